//! `gate token hash`: the `sha256:` line of the tokens file for a token read from stdin, so
//! the token itself never lands in a file, a shell history or a process list.
//!
//! The token is the whole of stdin without its final line break (`echo "$T" | gate token
//! hash` and `printf %s "$T" | gate token hash` agree); the server trims a presented token
//! the same way, so what is hashed here is what a client sends.

use std::io::Read as _;

use crate::{exit, render};

/// Arguments of `gate token`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Read a token from stdin; print `sha256: <hex>` for the tokens file of `gate serve --tokens`.
    Hash,
}

/// Runs `gate token`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Hash => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| exit::usage(format!("cannot read the token from stdin: {e}")))?;
            let line = hash_line(&input).map_err(exit::usage)?;
            render::write_stdout(&format!("{line}\n"))?;
            Ok(exit::OK)
        }
    }
}

/// `sha256: <hex>` for a token as read from stdin.
fn hash_line(input: &str) -> Result<String, String> {
    let token = input.trim();
    if token.is_empty() {
        return Err(
            "no token on stdin: pipe the token in (`printf %s \"$TOKEN\" | gate token hash`)"
                .into(),
        );
    }
    if token.contains(char::is_whitespace) {
        return Err("the token contains whitespace: a bearer token is one word".into());
    }
    let digest = gate_engine::daemon::api::auth::sha256(token);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256: {hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_sha256_of_the_token_without_its_line_break() {
        // SHA-256("test"), the example of the tokens file documentation.
        let expected = "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(hash_line("test").unwrap(), expected);
        assert_eq!(hash_line("test\n").unwrap(), expected);
        assert_eq!(hash_line("test\r\n").unwrap(), expected);
        assert!(hash_line("\n").is_err());
        assert!(hash_line("two words").is_err());
    }
}
