//! The config file: defaults a person sets once. `$UDPCHAT_CONFIG` if set, else
//! `$XDG_CONFIG_HOME/udpchat/config.toml`, else `~/.config/udpchat/config.toml`; a missing
//! file is no config. Precedence: a flag on the command line, then the environment
//! (`UDPCHAT_HOME`), then this file, then the built-in default.
//!
//! ```toml
//! nick = "ada"
//! home = "/home/ada/chats"
//! port = 12001
//! no_history = false
//! bell = true
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The environment variable naming the config file explicitly.
pub(crate) const CONFIG_ENV: &str = "UDPCHAT_CONFIG";

/// What the config file may set.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The nickname (`--nick`).
    pub(crate) nick: Option<String>,
    /// The data directory (`--home`).
    pub(crate) home: Option<PathBuf>,
    /// The local UDP port (`--port`).
    pub(crate) port: Option<u16>,
    /// Keep no history (`--no-history`).
    pub(crate) no_history: Option<bool>,
    /// Ring the bell for a message that arrives while you are away (`--no-bell` when
    /// false); on by default.
    pub(crate) bell: Option<bool>,
}

/// Where the config file is looked for.
fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| Path::new(&h).join(".config"))
    })?;
    Some(base.join("udpchat").join("config.toml"))
}

/// Reads the config file, if there is one.
///
/// # Errors
/// One line naming the file: unreadable, not TOML, or a key this udpchat does not know
/// (with the line it is on).
pub(crate) fn load() -> anyhow::Result<FileConfig> {
    let Some(path) = path() else {
        return Ok(FileConfig::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(e) => anyhow::bail!("cannot read the config file {}: {e}", path.display()),
    };
    parse(&text).map_err(|e| anyhow::anyhow!("the config file {}: {e}", path.display()))
}

fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| {
        // toml's message spans several lines with a caret; one line is enough here.
        let message = e.message().to_owned();
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].lines().count().max(1);
                format!("line {line}: {message}")
            }
            None => message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_mistakes_name_the_line() {
        let c = parse("nick = \"ada\"\nport = 12001\nno_history = true\nbell = false\n").unwrap();
        assert_eq!(c.bell, Some(false));
        assert_eq!(c.nick.as_deref(), Some("ada"));
        assert_eq!(c.port, Some(12001));
        assert_eq!(c.no_history, Some(true));
        assert_eq!(parse("").unwrap(), FileConfig::default());
        let e = parse("nick = \"ada\"\nnik = \"x\"\n").unwrap_err();
        assert!(
            e.contains("unknown field `nik`") && e.contains("`nick`"),
            "{e}"
        );
        let e = parse("port = 70000\n").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
    }
}
