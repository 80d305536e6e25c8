//! `.dockerignore`: which files of a build context stay out of it.
//!
//! The engine's API takes the context as it is sent; leaving files out is
//! the client's part (as `docker build` does), so hifi reads the file at the
//! root of the context and applies it with Docker's own rules:
//!
//! - one pattern per line; blank lines and lines starting with `#` are
//!   skipped; surrounding whitespace is trimmed;
//! - a pattern is a path relative to the context root (a leading `/` is
//!   dropped, `.` and `..` are cleaned); `*` matches within one path
//!   element, `?` one character of it, `[…]` a class, `\` escapes, and `**`
//!   any number of elements (zero included);
//! - a path is left out when it, or a directory above it, matches; the last
//!   pattern that matches decides, and `!pattern` takes a path back in.
//!
//! The Dockerfile and `.dockerignore` are always sent: the engine itself
//! reads them (and drops them from the context when they are listed).

use std::io;
use std::path::Path;

use regex::Regex;

/// The file's name at the root of a build context.
pub const FILE: &str = ".dockerignore";

/// The patterns of one `.dockerignore`, in order.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    regex: Regex,
    /// `!pattern`: takes paths back in.
    exception: bool,
}

impl DockerIgnore {
    /// The `.dockerignore` at the root of `context`; none leaves nothing out.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read, or a pattern is not valid (the
    /// error names the line).
    pub fn read(context: &Path) -> io::Result<DockerIgnore> {
        match std::fs::read_to_string(context.join(FILE)) {
            Ok(text) => DockerIgnore::parse(&text)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{FILE}: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(e) => Err(e),
        }
    }

    /// The patterns in `text`, the contents of a `.dockerignore`.
    ///
    /// # Errors
    ///
    /// A pattern that cannot be compiled (an unclosed `[`, a trailing `\`),
    /// named with its line number.
    pub fn parse(text: &str) -> Result<DockerIgnore, String> {
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let text = clean(raw.strip_prefix('/').unwrap_or(raw));
            if text.is_empty() {
                continue;
            }
            let regex =
                compile(&text).map_err(|why| format!("line {}: pattern `{line}`: {why}", n + 1))?;
            patterns.push(Pattern { regex, exception });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Some pattern takes paths back in (`!`): an excluded directory must
    /// still be looked into.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context root, `/`-separated) stays
    /// out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that could change the verdict is tried.
            if p.exception != excluded {
                continue;
            }
            if p.matches(path) {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

impl Pattern {
    /// The path or one of the directories above it matches.
    fn matches(&self, path: &str) -> bool {
        if self.regex.is_match(path) {
            return true;
        }
        path.match_indices('/')
            .any(|(i, _)| self.regex.is_match(&path[..i]))
    }
}

/// A path cleaned as Go's `filepath.Clean` does (relative paths only): no
/// empty or `.` elements, `..` removes the element before it (and is kept
/// at the start), no trailing `/`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// The regular expression for a cleaned pattern, the way the engine's
/// pattern matcher builds it.
fn compile(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.next() {
                Some(escaped) => re.push_str(&regex::escape(&escaped.to_string())),
                None => return Err("it ends with a lone `\\`".into()),
            },
            '[' => {
                // A class, up to its `]`, as written (`^` and `!` negate).
                let mut class = String::from("[");
                let mut closed = false;
                if let Some(&first) = chars.peek()
                    && (first == '!' || first == '^')
                {
                    chars.next();
                    class.push('^');
                }
                for k in chars.by_ref() {
                    if k == ']' {
                        closed = true;
                        break;
                    }
                    if k == '\\' || k == '[' {
                        class.push('\\');
                    }
                    class.push(k);
                }
                if !closed {
                    return Err("a `[` is never closed".into());
                }
                class.push(']');
                re.push_str(&class);
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid patterns")
    }

    #[test]
    fn paths_and_the_directories_above_them() {
        let d = ignore("# build output\n\ntarget\n/docs/\n*.log\n");
        assert!(d.excludes("target"));
        assert!(d.excludes("target/debug/app"));
        assert!(d.excludes("docs/index.md"));
        assert!(d.excludes("app.log"));
        // `*` stays within one element: a log in a directory is kept.
        assert!(!d.excludes("logs/app.log"));
        assert!(!d.excludes("src/target.rs"));
        assert!(!d.excludes("Dockerfile"));
    }

    #[test]
    fn double_stars_cross_any_number_of_directories() {
        let d = ignore("**/*.tmp\nsrc/**/fixtures\ncache/**\n");
        assert!(d.excludes("a.tmp"));
        assert!(d.excludes("a/b/c.tmp"));
        assert!(d.excludes("src/fixtures/one.json"));
        assert!(d.excludes("src/a/b/fixtures"));
        assert!(d.excludes("cache/x/y"));
        assert!(!d.excludes("srcfixtures"));
        assert!(!d.excludes("a.tmpl"));
    }

    #[test]
    fn the_last_matching_pattern_decides() {
        let d = ignore("*.md\n!README.md\nREADME*.md\n!README-keep.md\n");
        assert!(d.excludes("CHANGES.md"));
        assert!(d.excludes("README.md"));
        assert!(!d.excludes("README-keep.md"));
        let d = ignore("docs\n!docs/api\n");
        assert!(d.has_exceptions());
        assert!(d.excludes("docs/guide.md"));
        assert!(!d.excludes("docs/api"));
        assert!(!d.excludes("docs/api/v1.json"));
    }

    #[test]
    fn classes_escapes_and_cleaning() {
        let d = ignore("file[0-9].txt\nweird\\*name\n./a/../b/\n[!x]y\n");
        assert!(d.excludes("file7.txt"));
        assert!(!d.excludes("filex.txt"));
        assert!(d.excludes("weird*name"));
        assert!(!d.excludes("weirdXname"));
        assert!(d.excludes("b/c"));
        assert!(!d.excludes("a/b"));
        assert!(d.excludes("zy"));
        assert!(!d.excludes("xy"));
        // Dots and other regex characters are literal.
        let d = ignore("a.b\n(c)+\n");
        assert!(d.excludes("a.b"));
        assert!(!d.excludes("axb"));
        assert!(d.excludes("(c)+"));
    }

    #[test]
    fn broken_patterns_are_named_with_their_line() {
        let e = DockerIgnore::parse("ok\nbad[\n").expect_err("unclosed class");
        assert!(e.contains("line 2") && e.contains("bad["), "{e}");
        let e = DockerIgnore::parse("x\\").expect_err("lone escape");
        assert!(e.contains("line 1"), "{e}");
        assert!(!ignore("\n# only comments\n").excludes("anything"));
    }
}
