//! Who this process is: its user id, as the kernel reports it on `/proc/self` (the owner of a
//! process's `/proc` directory is its effective uid), so no FFI is needed.

use std::os::unix::fs::MetadataExt;

/// This process's effective uid; `None` where `/proc` is not mounted.
pub fn uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_uid_is_the_owner_of_files_this_process_creates() {
        let dir = crate::util::scratch::TempDir::new("uid");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let created_by = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&file).unwrap());
        assert_eq!(super::uid(), Some(created_by));
    }
}
