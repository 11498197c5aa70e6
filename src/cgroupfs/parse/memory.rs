//! `memory.stat` (v2 and v1): the byte-valued keys, in one table each.

use super::{flat_keyed_lines, ParseError};

/// v2 `memory.stat` keys that are amounts of memory, in bytes: every key
/// Documentation/admin-guide/cgroup-v2.rst ("memory.stat", Linux 6.18)
/// documents as an amount, in the kernel's order (`memory_stats[]` in
/// mm/memcontrol.c). The keys after them count events or pages
/// (`workingset_*`, `pswpin`, `pgfault`, `pgscan*`, `thp_*`, `numa_*`,
/// `pgdemote_*`, ...) and are not here; nor is `zswap_incomp`, documented
/// as a number of pages. Keys a kernel lacks (`sec_pagetables` before 6.2,
/// `zswap*` before 5.19 or without CONFIG_ZSWAP, `hugetlb` before 6.6 or
/// without the `memory_hugetlb_accounting` mount option) are absent.
pub const MEMORY_STAT_BYTES: &[&str] = &[
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "zswap",
    "zswapped",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
    "hugetlb",
];

/// v1 `memory.stat` hierarchical keys in bytes (cgroup-v1/memory.rst 5.2:
/// the `total_` versions of the per-cgroup keys, which include
/// descendants as v2's keys do). The `total_pg*` keys are event counts.
pub const MEMORY_STAT_V1_BYTES: &[&str] = &[
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_shmem",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_swap",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

/// The byte keys of a `memory.stat`, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryStat {
    pub values: Vec<(&'static str, u64)>,
}

impl MemoryStat {
    pub fn get(&self, key: &str) -> Option<u64> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// v2 `memory.stat`: the keys of [`MEMORY_STAT_BYTES`].
pub fn parse_memory_stat(text: &str) -> Result<MemoryStat, ParseError> {
    keyed_subset(text, MEMORY_STAT_BYTES)
}

/// v1 `memory.stat`: the keys of [`MEMORY_STAT_V1_BYTES`].
pub fn parse_memory_stat_v1(text: &str) -> Result<MemoryStat, ParseError> {
    keyed_subset(text, MEMORY_STAT_V1_BYTES)
}

/// The `keys` of a flat keyed file, in file order. Unknown keys are
/// ignored whatever their value; a known key whose value does not parse
/// fails the file (a broken read, counted, not a series quietly gone).
fn keyed_subset(text: &str, keys: &[&'static str]) -> Result<MemoryStat, ParseError> {
    let mut out = MemoryStat {
        values: Vec::with_capacity(keys.len()),
    };
    let mut bad = 0;
    flat_keyed_lines(text, |line, k, v| {
        if let Some(key) = keys.iter().find(|key| **key == k) {
            match v {
                Some(v) => out.values.push((key, v)),
                None if bad == 0 => bad = line,
                None => {}
            }
        }
    })?;
    if bad != 0 {
        return Err(ParseError::new(bad, "bad value of a known key"));
    }
    Ok(out)
}
