//! How the binaries' allocator keeps memory it is given back: a setting
//! of the process, so it belongs to the binaries (`flowsql`,
//! `flowsql-executor`, `flowsql-scheduler`), not to the library, whose
//! callers choose their own allocator.
//!
//! A query frees and allocates buffers of a few megabytes all the time:
//! each object's inflated text, the batches a grouping splits and spills.
//! glibc's malloc serves blocks that size from `mmap` and returns them with
//! `munmap`, or trims its heap as soon as 128 KiB are free at its top, so
//! every new buffer is fresh pages the kernel must fault in and zero. With
//! these two settings a freed buffer stays in the heap for the next one.
//! Both are bounded: blocks past [`MMAP_FROM`] still come from `mmap`, and
//! past [`TRIM_PAST`] of free memory at its top the heap is still trimmed,
//! so an idle shell does not keep a large query's peak.

/// Blocks at least this large come from `mmap` (glibc's ceiling for the
/// setting on 64-bit machines).
pub(crate) const MMAP_FROM: i32 = 32 << 20;

/// Free memory past this at the top of a heap is returned to the system.
pub(crate) const TRIM_PAST: i32 = 128 << 20;

/// Applies the settings above; call first thing in `main`, before any
/// thread starts. Elsewhere than glibc, the allocator is left as it is.
pub(crate) fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; it is called
    // before other threads exist. A setting it refuses (it returns 0)
    // leaves glibc's default, which is correct, only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_PAST);
    }
}
