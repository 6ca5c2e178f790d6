# `bge encode` on the CPU and on CUDA (f32, bf16, f16) against transformers' f64 embeddings,
# on a GPU machine with torch installed. DIR holds the `bge` binary and prepare.py's output;
# results go to OUT. Times include loading the model and starting CUDA.
# usage: OUT=... bash run.sh DIR
set -u
DIR=$1
TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export LD_LIBRARY_PATH=$TL/lib:$(ls -d "$TL"/../nvidia/*/lib | tr '\n' ':')/usr/local/cuda/lib64
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
B=$DIR/bge
ldd "$B" | grep -E "torch_cuda|torch_cpu"
for run in cpu:f32 cuda:f32 cuda:bf16 cuda:f16; do
  dev=${run%%:*}; dt=${run##*:}
  s=$EPOCHREALTIME
  "$B" --device "$dev" --dtype "$dt" encode --model "$DIR/tinybert" --input "$DIR/texts.txt" \
    --output "$OUT/$dev-$dt.jsonl" --batch-size 64 2>&1 | tail -1
  echo "$dev $dt: $(python3 -c "print(round($EPOCHREALTIME - $s, 2))") s"
done
echo "a device that is not there:"
"$B" --device cuda:7 encode --model "$DIR/tinybert" --input "$DIR/texts.txt" --output "$OUT/bad.jsonl" 2>&1 | tail -1
python3 "$(dirname "$0")/compare.py" "$OUT" "$DIR/ref.pt" cpu-f32 cuda-f32 cuda-bf16 cuda-f16
