//! `/proc/<pid>/uid_map` and `gid_map`: which host id a container id stands for.
//!
//! Hand-written: each line is three unsigned numbers (`inside outside count`, user_namespaces(7));
//! the procfs crate has no reader for these files.

/// The id that `inside` maps to in the reader's namespace; `None` when no line maps it.
pub fn outside_id(map: &str, inside: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let mut numbers = line.split_whitespace().map(|n| n.parse::<u64>().ok());
        let (Some(Some(first)), Some(Some(outside)), Some(Some(count))) =
            (numbers.next(), numbers.next(), numbers.next())
        else {
            return None;
        };
        let offset = u64::from(inside).checked_sub(first)?;
        (offset < count)
            .then(|| outside.checked_add(offset))
            .flatten()
            .and_then(|id| u32::try_from(id).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_through_the_matching_range_only() {
        let identity = "         0          0 4294967295\n";
        assert_eq!(outside_id(identity, 0), Some(0));
        assert_eq!(outside_id(identity, 1000), Some(1000));
        let remapped = "0 100000 65536\n";
        assert_eq!(outside_id(remapped, 0), Some(100000));
        assert_eq!(outside_id(remapped, 65535), Some(165535));
        assert_eq!(outside_id(remapped, 65536), None);
        let split = "0 1000 1\n1 100000 65536\n";
        assert_eq!(outside_id(split, 0), Some(1000));
        assert_eq!(outside_id(split, 5), Some(100004));
        assert_eq!(outside_id("", 0), None);
        assert_eq!(outside_id("garbage\n0 x 1\n", 0), None);
        // Overflowing ranges map nothing rather than wrapping.
        assert_eq!(outside_id("0 4294967295 2\n", 1), None);
    }
}
