//! Hugepage limits: hugetlb.<size>.limit_in_bytes (v1) or hugetlb.<size>.max (v2).
//! The page size must be one this host has (/sys/kernel/mm/hugepages).

use oci_spec::runtime::LinuxHugepageLimit;

use super::super::{fs, Cgroup};
use crate::error::{Error, Result};

pub fn apply(cg: &Cgroup, limits: &[LinuxHugepageLimit]) -> Result<()> {
    let sizes = page_sizes();
    for (i, l) in limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        if !sizes.iter().any(|s| s == l.page_size()) {
            return Err(Error::field(
                format!("{field}.pageSize"),
                format!("{:?} is not a hugepage size of this host (it has {})", l.page_size(), sizes.join(", ")),
            ));
        }
        if l.limit() < 0 {
            return Err(Error::field(format!("{field}.limit"), format!("{} is negative", l.limit())));
        }
        let d = cg.controller(&field, "hugetlb")?;
        let file = if d.v2 {
            format!("hugetlb.{}.max", l.page_size())
        } else {
            format!("hugetlb.{}.limit_in_bytes", l.page_size())
        };
        fs::write(&format!("{field}.limit"), &d.dir, &file, l.limit().to_string())?;
    }
    Ok(())
}

/// The host's hugepage sizes as the cgroup files name them ("2MB", "1GB").
pub fn page_sizes() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()?;
            Some(human(kb))
        })
        .collect();
    out.sort();
    out
}

fn human(kb: u64) -> String {
    match kb {
        k if k >= 1 << 20 && k % (1 << 20) == 0 => format!("{}GB", k >> 20),
        k if k >= 1 << 10 && k % (1 << 10) == 0 => format!("{}MB", k >> 10),
        k => format!("{k}KB"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_sizes_are_named_like_the_cgroup_files() {
        assert_eq!(super::human(2048), "2MB");
        assert_eq!(super::human(1_048_576), "1GB");
        assert_eq!(super::human(64), "64KB");
    }
}
