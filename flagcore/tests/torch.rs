//! `TensorView` <-> `tch::Tensor` round trips and errors, safetensors I/O, and the link checks
//! that make binaries run with no environment variables and keep CUDA visible.
#![cfg(feature = "torch")]

use flagcore::torch::{
    contiguous_slice, from_view, load_safetensors, save_safetensors, view, view_mut,
};
use flagcore::{bf16, DType, Device, Error, TensorView};
use tch::{Kind, Tensor};

#[test]
fn views_of_tensors_round_trip() {
    let t = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)).reshape([2, 3, 4]);
    let v = view::<f32>(&t).unwrap();
    assert_eq!(v.shape(), &[2, 3, 4]);
    assert_eq!(v.strides(), &[12, 4, 1]);
    assert_eq!(v.get(&[1, 2, 3]), Some(23.0));
    let back = from_view(&v).unwrap();
    assert!(back.equal(&t));

    // A transposed, narrowed tensor is viewed in place with its strides, and copied back in order.
    let strided = t.transpose(0, 2).narrow(1, 1, 2);
    let sv = view::<f32>(&strided).unwrap();
    assert!(!sv.is_contiguous());
    assert_eq!(sv.shape(), &[4, 2, 2]);
    assert!(from_view(&sv).unwrap().equal(&strided.contiguous()));
    assert_eq!(
        sv.get(&[3, 1, 1]),
        Some(strided.double_value(&[3, 1, 1]) as f32)
    );
}

#[test]
fn bf16_and_integer_round_trips() {
    let t = Tensor::randn([5, 7], (Kind::BFloat16, tch::Device::Cpu));
    let v = view::<bf16>(&t).unwrap();
    assert_eq!(v.dtype(), DType::BF16);
    assert!(from_view(&v).unwrap().equal(&t));

    let data: Vec<i64> = (0..12).collect();
    let iv = TensorView::from_slice(&data, &[3, 4]).unwrap();
    let it = from_view(&iv).unwrap();
    assert_eq!(it.kind(), Kind::Int64);
    assert_eq!(contiguous_slice::<i64>(&it).unwrap(), &data[..]);
    let permuted = iv.permute(&[1, 0]).unwrap();
    assert!(from_view(&permuted).unwrap().equal(&it.transpose(0, 1)));
}

#[test]
fn mutable_views_write_through() {
    let mut t = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
    {
        let mut v = view_mut::<f32>(&mut t).unwrap();
        *v.get_mut(&[1, 2]).unwrap() = 5.0;
        v.as_mut_slice().unwrap()[0] = -1.0;
    }
    assert_eq!(t.double_value(&[1, 2]), 5.0);
    assert_eq!(t.double_value(&[0, 0]), -1.0);
}

#[test]
fn view_errors_are_typed() {
    let t = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
    match view::<f64>(&t) {
        Err(Error::DTypeMismatch { expected, actual }) => {
            assert_eq!((expected, actual), (DType::F64, DType::F32))
        }
        other => panic!("expected a dtype mismatch, got {other:?}"),
    }
    assert!(matches!(
        contiguous_slice::<f32>(&t.tr()),
        Err(Error::NotContiguous { .. })
    ));
    let complex = Tensor::ones([2], (Kind::ComplexFloat, tch::Device::Cpu));
    assert!(matches!(view::<f32>(&complex), Err(Error::ParseDType(_))));
    let empty = Tensor::zeros([0, 3], (Kind::Float, tch::Device::Cpu));
    assert_eq!(view::<f32>(&empty).unwrap().numel(), 0);
}

#[test]
fn kinds_and_devices_convert_both_ways() {
    for dt in DType::ALL {
        let kind: Kind = dt.into();
        assert_eq!(DType::try_from(kind).unwrap(), dt);
    }
    assert_eq!(Device::Cpu.to_tch(), tch::Device::Cpu);
    assert_eq!(
        Device::from_tch(tch::Device::Cuda(2)).unwrap(),
        Device::Cuda(2)
    );
    let auto = Device::Auto.to_tch();
    assert_eq!(auto == tch::Device::Cpu, !tch::Cuda::is_available());
    if tch::Cuda::device_count() == 0 {
        assert!(matches!(
            Device::Cuda(0).resolve_tch(),
            Err(Error::CudaUnavailable(_))
        ));
    }
}

#[test]
fn seeding_repeats_random_draws() {
    flagcore::torch::manual_seed(1234);
    let a = Tensor::randn([8], (Kind::Float, tch::Device::Cpu));
    flagcore::torch::manual_seed(1234);
    let b = Tensor::randn([8], (Kind::Float, tch::Device::Cpu));
    assert!(a.equal(&b));
}

#[test]
fn safetensors_save_and_load_with_dtype_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let w = Tensor::randn([4, 3], (Kind::Float, tch::Device::Cpu));
    let ids = Tensor::arange(5, (Kind::Int64, tch::Device::Cpu));
    let wt = w.tr(); // strided on purpose
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    save_safetensors(
        &path,
        &[("w", &wt), ("ids", &ids)],
        Some(DType::BF16),
        Some(meta),
    )
    .unwrap();

    let loaded = load_safetensors(&path, None, tch::Device::Cpu).unwrap();
    let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ids", "w"]);
    assert_eq!(loaded[1].1.kind(), Kind::BFloat16, "floats saved as bf16");
    assert_eq!(loaded[0].1.kind(), Kind::Int64, "integers keep their type");
    assert!(loaded[1].1.equal(&wt.to_kind(Kind::BFloat16)));

    let as_f32 = load_safetensors(&path, Some(DType::F32), tch::Device::Cpu).unwrap();
    assert_eq!(as_f32[1].1.kind(), Kind::Float);
    assert!(as_f32[0].1.equal(&ids));

    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = load_safetensors(&path, None, tch::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
}

/// The dynamic section of this very test binary.
fn own_dynamic_entries() -> (Vec<String>, Vec<String>) {
    use object::read::elf::{Dyn, ElfFile64, FileHeader};
    let bytes = std::fs::read("/proc/self/exe").unwrap();
    let elf = ElfFile64::<object::Endianness>::parse(&*bytes).unwrap();
    let endian = elf.endian();
    let header = elf.elf_header();
    let sections = header.sections(endian, &*bytes).unwrap();
    let (dyns, strings_index) = sections
        .dynamic(endian, &*bytes)
        .unwrap()
        .expect("dynamically linked");
    let strings = sections.strings(endian, &*bytes, strings_index).unwrap();
    let (mut needed, mut runpath) = (Vec::new(), Vec::new());
    for d in dyns {
        let tag = d.d_tag(endian) as u32;
        let text = || String::from_utf8_lossy(d.string(endian, strings).unwrap()).to_string();
        if tag == object::elf::DT_NEEDED {
            needed.push(text());
        } else if tag == object::elf::DT_RUNPATH || tag == object::elf::DT_RPATH {
            runpath.extend(text().split(':').map(str::to_string));
        }
    }
    (needed, runpath)
}

#[test]
fn binaries_keep_libtorch_cuda_and_find_libtorch_without_env() {
    let lib =
        std::path::Path::new(flagcore::torch::libtorch_lib_dir().expect("built with LIBTORCH"));
    let (needed, runpath) = own_dynamic_entries();
    assert!(needed.iter().any(|n| n == "libtorch_cpu.so"), "{needed:?}");
    if lib.join("libtorch_cuda.so").exists() {
        assert!(
            needed.iter().any(|n| n == "libtorch_cuda.so"),
            "libtorch_cuda.so was dropped by --as-needed: CUDA would be silently unavailable ({needed:?})"
        );
    }
    assert!(
        runpath.iter().any(|p| std::path::Path::new(p) == lib),
        "{runpath:?} lacks {}",
        lib.display()
    );
    assert!(flagcore::torch::libtorch_version()
        .unwrap()
        .starts_with("2.11.0"));
}

/// Run by `binaries_run_with_an_empty_environment` in a child process with no environment.
#[test]
#[ignore = "run as a child process by binaries_run_with_an_empty_environment"]
fn child_tensor_op() {
    let t = Tensor::ones([3], (Kind::Float, tch::Device::Cpu));
    assert_eq!(t.sum(Kind::Float).double_value(&[]), 3.0);
}

#[test]
fn binaries_run_with_an_empty_environment() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_tensor_op",
            "--test-threads=1",
        ])
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
