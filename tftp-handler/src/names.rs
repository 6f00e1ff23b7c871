//! File-name rules for requests.
//!
//! Names are opaque keys into the store, with a few rules every request goes through: one
//! leading `/` is stripped (clients send both `/pxelinux.0` and `pxelinux.0`), and empty names
//! or names with NUL or other control characters are refused. Confinement to a directory is
//! the job of whatever maps names onto a directory, not of this module.

use thiserror::Error;

/// Why a requested file name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty (after the leading `/` is stripped).
    #[error("empty file name")]
    Empty,
    /// The name contains a NUL or another control character.
    #[error("file name contains a control character")]
    ControlCharacter,
}

/// The store key for a requested file name.
pub fn normalize(requested: &str) -> Result<&str, NameError> {
    let name = requested.strip_prefix('/').unwrap_or(requested);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leading_slash_is_stripped() {
        assert_eq!(normalize("/pxelinux.0"), Ok("pxelinux.0"));
        assert_eq!(normalize("pxelinux.0"), Ok("pxelinux.0"));
        assert_eq!(normalize("//x"), Ok("/x"));
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(normalize(""), Err(NameError::Empty));
        assert_eq!(normalize("/"), Err(NameError::Empty));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(normalize("a\nb"), Err(NameError::ControlCharacter));
        assert_eq!(normalize("a\u{7f}"), Err(NameError::ControlCharacter));
        assert_eq!(normalize("tab\there"), Err(NameError::ControlCharacter));
    }

    #[test]
    fn ordinary_paths_pass_unchanged() {
        assert_eq!(
            normalize("pxelinux.cfg/default"),
            Ok("pxelinux.cfg/default")
        );
        assert_eq!(normalize("%s%n%x"), Ok("%s%n%x"));
    }
}
