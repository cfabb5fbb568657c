//! `gate`: an SLO-driven release gate.
//!
//! This binary is thin: argument parsing (clap derive), one `run` per subcommand in [`cmd`],
//! and one place — [`main`] — that maps errors to exit codes ([`exit`]) and prints the
//! "Caused by:" chain. A broken pipe (`gate status | head`) is a clean exit.

mod client;
mod cmd;
mod exit;
mod render;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc rather than the system allocator: a daemon cycle at 10,000 trains allocates and
/// frees some millions of small strings and maps, which glibc's malloc both spends a quarter of
/// the cycle on and leaves fragmented (RSS growing cycle after cycle); BENCHMARKS.md §10.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (`mimalloc.h`; retired options keep
/// their slots, so the numbering is stable). libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `mi_option_allow_thp`, likewise.
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 37;

/// Memory freed at the end of a cycle goes back to the OS at once rather than after
/// mimalloc's default 10 ms: a cycle frees what it built in one burst and the next comes
/// seconds later, so a delay only keeps the burst resident (BENCHMARKS.md §10: RSS after a
/// cycle 183–258 MB with the delay, 163–181 MB without, at no measurable CPU cost).
///
/// And no transparent huge pages: mimalloc asks for them on its arena by default, and a
/// 2 MB page stays resident whole while a few kilobytes of it are in use, so the memory a
/// cycle frees could not go back (BENCHMARKS.md §11). mimalloc reads this option once, before
/// `main`, so the process-wide switch it would then set is set here as well.
fn tune_allocator() {
    // SAFETY: sets options of the allocator linked above; any value is valid for them.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// SLO-driven release gate: decides pending, promote, pause or rollback for release trains
/// from their Prometheus telemetry.
#[derive(Parser, Debug)]
#[command(name = "gate", version, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config file; report every error with file:line:column.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "gate.yaml")]
        config: PathBuf,
        /// Print the effective config, defaults applied.
        #[arg(long)]
        effective: bool,
    },
    /// Evaluate one train once, straight against Prometheus (no daemon). Exit code = verdict.
    Eval(cmd::eval::Args),
    /// Replay a gate's rules over past data, as the daemon would have evaluated them.
    /// Exit code = the final decision of a single train; 0 for --trains and --db when every
    /// replay ran.
    Replay(cmd::replay::Args),
    /// Run the daemon: evaluate every active train on schedule, serve the HTTP API, send
    /// webhooks. SIGTERM stops it gracefully, SIGHUP reloads the config.
    Serve(cmd::serve::Args),
    /// Register, list and stop trains on the gate server.
    Train(cmd::train::Args),
    /// Show the server's decisions: every active train, or one train's verdict and why.
    Status(cmd::status::Args),
    /// Block until a train's decision is final. Exit code = verdict (see below).
    Wait(cmd::wait::Args),
    /// Force a train's decision, or resume it, recording who and why.
    Override(cmd::override_::Args),
    /// Approve a train whose gate has `approval: required`, recording who and why.
    Approve(cmd::approve::Args),
    /// List each gate's next departure windows and freezes, and whether it is open now.
    Calendar(cmd::calendar::Args),
    /// The trains in figures for a review: per gate and overall, outcomes, rates, time to
    /// verdict and the rules behind the rollbacks (from the server, or a store with --db).
    Report(cmd::report::Args),
    /// Re-drive dead-lettered webhook events (works on the store file, daemon up or down).
    Outbox(cmd::outbox::Args),
    /// Prune old history from the store file (finished trains, delivered webhook events).
    Store(cmd::store::Args),
    /// Print a gate config converted from OpenSLO v1 or Sloth SLOs (or why it cannot be).
    Import(cmd::import::Args),
    /// API tokens: `gate token hash` prints the tokens file line for a token read from stdin.
    Token(cmd::token::Args),
    /// Print a shell completion script (bash, zsh, fish).
    Completions(cmd::completions::Args),
    /// Write the demo telemetry (OpenMetrics) ending at --end; used by scripts/demo.
    #[command(hide = true)]
    DemoData(cmd::demo_data::Args),
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Check { config, effective } => cmd::check::run(&config, effective),
            Command::Eval(args) => cmd::eval::run(args).await,
            Command::Replay(args) => cmd::replay::run(args).await,
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Train(args) => cmd::train::run(args).await,
            Command::Status(args) => cmd::status::run(args).await,
            Command::Wait(args) => cmd::wait::run(args).await,
            Command::Override(args) => cmd::override_::run(args).await,
            Command::Approve(args) => cmd::approve::run(args).await,
            Command::Calendar(args) => cmd::calendar::run(args).await,
            Command::Report(args) => cmd::report::run(args).await,
            Command::Outbox(args) => cmd::outbox::run(args).await,
            Command::Import(args) => cmd::import::run(args),
            Command::Token(args) => cmd::token::run(args),
            Command::Store(args) => cmd::store::run(args),
            Command::Completions(args) => {
                cmd::completions::run(args, <Cli as clap::CommandFactory>::command())
            }
            Command::DemoData(args) => cmd::demo_data::run(args),
        }
    });
    // Leave lingering tasks (open connections, timers) behind instead of waiting for them.
    runtime.shutdown_background();
    std::process::exit(match result {
        Ok(code) => code,
        Err(err) => report(&err),
    });
}

/// Prints an error with its cause chain and returns its exit code.
fn report(err: &anyhow::Error) -> i32 {
    if is_broken_pipe(err) {
        return exit::OK;
    }
    if let Some(e) = err.downcast_ref::<exit::Exit>() {
        eprintln!("error: {}", e.message);
        return e.code;
    }
    let messages = gate_rules::error_chain::messages(err.as_ref());
    eprintln!("error: {}", messages[0]);
    for cause in &messages[1..] {
        eprintln!("  Caused by: {cause}");
    }
    exit::INTERNAL
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
