//! The image's CUDA forward-compatibility library: which `libcuda.so.<version>` of its compat
//! directory (the `cuda-compat` package) is newest. Only file names are read, never the
//! files; the names come from the image, so any string must be handled.

use crate::request::{compare_versions, parse_version};

/// The version of the newest `libcuda.so.<version>` among `names`: a dotted numeric version
/// with at least major and minor (`libcuda.so.1`, the soname link, is no version). Of equal
/// versions (`580.1`, `580.1.0`) the last is taken. `None` when no name qualifies.
pub fn newest_libcuda_version<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .filter_map(|name| name.strip_prefix("libcuda.so."))
        .filter_map(|version| Some((parse_version(version)?, version)))
        .filter(|(parsed, _)| parsed.len() >= 2)
        .max_by(|a, b| compare_versions(&a.0, &b.0))
        .map(|(_, version)| version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_versioned_libcuda_is_picked_by_number() {
        let names = [
            "libcuda.so",
            "libcuda.so.1",
            "libcuda.so.590.48.01",
            "libcuda.so.590.9",
            "libnvidia-ptxjitcompiler.so.600.1",
            "libcuda.so.1000.1.x",
        ];
        // 590.48.01 > 590.9 numerically; `1` is the soname link; `1000.1.x` is no version.
        assert_eq!(newest_libcuda_version(names), Some("590.48.01"));
        assert_eq!(newest_libcuda_version(["libcuda.so.1", "libcuda.so"]), None);
        assert_eq!(newest_libcuda_version([]), None);
        assert_eq!(
            newest_libcuda_version(["libcuda.so.580.1", "libcuda.so.580.1.0"]),
            Some("580.1.0")
        );
    }
}
