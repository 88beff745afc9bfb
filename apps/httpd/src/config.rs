//! The command line: `httpd [--port N] [--root DIR] [--idle-timeout SECONDS] [--verbose]`.

use alloc::format;
use alloc::string::String;

/// The usage line printed with a command-line error.
pub const USAGE: &str = "usage: httpd [--port N] [--root DIR] [--idle-timeout SECONDS] [--verbose]";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// TCP port to listen on (default 80).
    pub port: u16,
    /// The directory served as `/` (default `/`, the VFS root).
    pub root: String,
    /// Seconds a connection may stay silent (nothing received, nothing sent) before it is
    /// closed (default 60).
    pub idle_timeout_secs: u64,
    /// Log each request to the console.
    pub verbose: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { port: 80, root: String::from("/"), idle_timeout_secs: 60, verbose: false }
    }
}

impl Config {
    /// Parses the arguments after the program name.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Config, String> {
        let mut config = Config::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg {
                "--port" => {
                    let text = value("--port")?;
                    config.port = text.parse().map_err(|_| format!("bad port `{text}`"))?;
                }
                "--root" => {
                    let root = value("--root")?;
                    if !root.starts_with('/') {
                        return Err(format!("--root must be an absolute path, not `{root}`"));
                    }
                    config.root = String::from(root);
                }
                "--idle-timeout" => {
                    let text = value("--idle-timeout")?;
                    config.idle_timeout_secs = text.parse().map_err(|_| format!("bad timeout `{text}`"))?;
                }
                "--verbose" | "-v" => config.verbose = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(Config::parse([]), Ok(Config::default()));
        assert_eq!(Config::default().port, 80);
        assert_eq!(Config::default().root, "/");
    }

    #[test]
    fn every_option() {
        let config = Config::parse(["--port", "8080", "--root", "/srv/www", "--idle-timeout", "5", "--verbose"]).unwrap();
        assert_eq!(
            config,
            Config { port: 8080, root: String::from("/srv/www"), idle_timeout_secs: 5, verbose: true }
        );
    }

    #[test]
    fn errors() {
        assert!(Config::parse(["--port"]).is_err());
        assert!(Config::parse(["--port", "70000"]).is_err());
        assert!(Config::parse(["--port", "x"]).is_err());
        assert!(Config::parse(["--root", "relative"]).is_err());
        assert!(Config::parse(["--bogus"]).is_err());
    }
}
