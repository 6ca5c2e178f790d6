//! `flagscale convert`: GGUF or a checkpoint folder → a Hugging Face folder
//! (`flagscale::convert`).

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// A .gguf file or a model folder (`config.json` + safetensors).
    input: PathBuf,
    /// The folder to write (must not exist unless --force).
    output: PathBuf,
    /// Weights dtype of the output: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: flagcore::DType,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

pub fn run(a: &ConvertArgs) -> anyhow::Result<()> {
    flagscale::convert::to_hf(&a.input, &a.output, a.dtype, a.force)?;
    println!("wrote {}", a.output.display());
    Ok(())
}
