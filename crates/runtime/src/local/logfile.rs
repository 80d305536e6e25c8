//! An instance's log file: opened for appending, one marker line per start,
//! and the tail of the current run for error messages.
//!
//! Logs are appended across restarts (history is useful when debugging), so
//! the marker is what keeps an old run's last words out of a new run's
//! error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

const MARKER: &str = "==> hifi: starting ";

/// How much of the file end is read for a tail: plenty for 15 lines, bounded
/// for a service that writes megabytes without a newline.
const TAIL_WINDOW: u64 = 64 * 1024;

/// Opens (creating directories and file as needed) the log for appending and
/// writes the marker line for this start, followed by `banner`.
pub(crate) fn open(path: &Path, banner: &str) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{MARKER}{banner}")?;
    Ok(file)
}

/// The last `max_lines` lines written since the last start marker; empty if
/// the file cannot be read.
pub(crate) fn tail(path: &Path, max_lines: usize) -> String {
    read_end(path)
        .map(|text| tail_of(&text, max_lines))
        .unwrap_or_default()
}

fn read_end(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let from = len.saturating_sub(TAIL_WINDOW);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if from > 0 {
        // The window starts mid-line; that fragment would only confuse.
        text = text
            .split_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default();
    }
    Ok(text)
}

fn tail_of(text: &str, max_lines: usize) -> String {
    let run = match text.rfind(MARKER) {
        Some(at) => text[at..].split_once('\n').map_or("", |(_, rest)| rest),
        None => text,
    };
    let lines: Vec<&str> = run.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_only_the_current_run() {
        let text = format!("{MARKER}x\nold 1\nold 2\n{MARKER}y\nnew 1\nnew 2\nnew 3\n");
        assert_eq!(tail_of(&text, 2), "new 2\nnew 3");
        assert_eq!(tail_of(&text, 15), "new 1\nnew 2\nnew 3");
        assert_eq!(tail_of("a\nb\n", 15), "a\nb");
    }
}
