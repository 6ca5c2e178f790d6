//! Where computation runs: `cpu`, `cuda`, `cuda:N`, or `auto` (CUDA when present).

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    Cpu,
    /// A CUDA device by ordinal; `cuda` alone means `cuda:0`.
    Cuda(usize),
    /// Resolved at run time: the first CUDA device if one is usable, else the CPU.
    #[default]
    Auto,
}

impl Device {
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for Device {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || crate::Error::ParseDevice(s.to_string());
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            "auto" => Ok(Device::Auto),
            other => {
                let index = other.strip_prefix("cuda:").ok_or_else(bad)?;
                // `usize::from_str` accepts a leading `+`; a device ordinal is digits only.
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                index.parse().map(Device::Cuda).map_err(|_| bad())
            }
        }
    }
}

crate::serde_via_str!(Device);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!(" CUDA:3 ".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
        for bad in ["cuda:", "cuda:x", "cuda:+1", "tpu", "cuda:-1", ""] {
            let err = bad.parse::<Device>().unwrap_err().to_string();
            assert!(err.contains("unknown device"), "{bad}: {err}");
        }
        let d: Device = serde_json::from_str("\"cuda:1\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"cuda:1\"");
    }
}
