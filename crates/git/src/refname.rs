//! Ref name rules, checked in Rust before any name reaches git.
//!
//! These mirror `git check-ref-format` (and its `--branch` mode) so that a bad
//! name is refused with a reason instead of a git error, and so that nothing
//! that looks like an option (`--upload-pack=...`) or a revision expression
//! (`a..b`, `x@{1}`, `x^`) can be smuggled into a command line. They never
//! accept something git would refuse; they may refuse slightly more.

/// Checks a short branch name (what follows `refs/heads/`).
pub(crate) fn check_branch(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.starts_with('-') {
        return Err("it must not start with '-'");
    }
    // Both are git's names for the current commit, not branches.
    if name == "HEAD" || name == "@" {
        return Err("HEAD and @ are not valid branch names");
    }
    check_ref(&format!("refs/heads/{name}"))
}

/// Checks a full ref name such as `refs/heads/main` or `refs/hifi/...`.
pub(crate) fn check_full(name: &str) -> Result<(), &'static str> {
    if !name.starts_with("refs/") {
        return Err("a full ref name must start with 'refs/'");
    }
    check_ref(name)
}

fn check_ref(name: &str) -> Result<(), &'static str> {
    if name == "@" {
        return Err("it cannot be '@'");
    }
    if name.contains("..") {
        return Err("it cannot contain '..'");
    }
    if name.contains("@{") {
        return Err("it cannot contain '@{'");
    }
    if name.ends_with('.') {
        return Err("it cannot end with '.'");
    }
    if let Some(c) = name.chars().find(|c| is_forbidden(*c)) {
        return Err(match c {
            ' ' => "it cannot contain spaces",
            c if c.is_ascii_control() => "it cannot contain control characters",
            _ => "it cannot contain any of ~ ^ : ? * [ \\",
        });
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Err("it cannot start or end with '/' or contain '//'");
        }
        if component.starts_with('.') {
            return Err("no '/'-separated part may start with '.'");
        }
        if component.ends_with(".lock") {
            return Err("no '/'-separated part may end with '.lock'");
        }
    }
    Ok(())
}

fn is_forbidden(c: char) -> bool {
    c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_branch_names() {
        for good in [
            "main",
            "feature/PAY-12",
            "hifi/env/dev",
            "fix-1.2",
            "ünïcode",
            "a@b",
        ] {
            assert_eq!(check_branch(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn refuses_what_check_ref_format_refuses() {
        for bad in [
            "",
            "-x",
            "--upload-pack=x",
            "HEAD",
            "@",
            "a..b",
            "a b",
            "a@{1}",
            "@{",
            "x.lock",
            "x.lock/y",
            "a/.b",
            ".a",
            "a/",
            "/a",
            "a//b",
            "a.",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "a\tb",
            "a\u{7f}",
        ] {
            assert!(check_branch(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn full_names_must_live_under_refs() {
        assert!(check_full("refs/heads/main").is_ok());
        assert!(check_full("refs/hifi/env/dev").is_ok());
        assert!(check_full("HEAD").is_err());
        assert!(check_full("heads/main").is_err());
        assert!(check_full("refs/heads/a..b").is_err());
    }
}
