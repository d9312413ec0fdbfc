//! The `sser` binary: parse the command line, load configuration, set up
//! logging, run the server until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sser::Server;
use sser::config::Config;
use tracing_subscriber::EnvFilter;

/// A fast, safe Server-Sent Events pub/sub server, API-compatible with SSER.
///
/// Configuration comes from built-in defaults, then _config/base.yaml, then
/// _config/$APP_ENV.yaml, then .env, then the environment (see README).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Folder holding base.yaml and <APP_ENV>.yaml.
    #[arg(long, default_value = "_config", env = "SSER_CONFIG_DIR")]
    config_dir: PathBuf,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
    /// Read a password from standard input (one line), print its argon2id
    /// hash for `compat.gosse.accounts[].passwordHash`, and exit. Never as an
    /// argument: those show in `ps` and shell history.
    #[arg(long)]
    hash_password: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.hash_password {
        return hash_password();
    }
    let config = match Config::load(&cli.config_dir) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sser: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        match serde_json::to_string_pretty(&config) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("sser: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    init_tracing(&config);
    raise_file_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sser: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sser: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), sser::StartError> {
    let generated = config.generated_tokens.clone();
    let app_env = config.app_env.clone();
    let domain = config
        .server
        .ssl
        .domain_name
        .0
        .iter()
        .find(|d| !d.starts_with("*."))
        .cloned();
    let api_over_http = config.server.ssl.api_over_http.0;
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let base = if addr.is_ipv6() {
        format!("http://[{host}]:{}", addr.port())
    } else {
        format!("http://{host}:{}", addr.port())
    };
    tracing::info!(%addr, env = %app_env, version = env!("CARGO_PKG_VERSION"), "sser listening");
    // Printed once, to the terminal only: these tokens exist nowhere else.
    eprintln!("\nsser {} is running at {base}", env!("CARGO_PKG_VERSION"));
    let base = match server.tls_addr() {
        Some(tls) => {
            // The certificate names the domain, so that is the URL to use.
            let host = domain.unwrap_or_else(|| host.clone());
            let https = match tls.port() {
                443 => format!("https://{host}"),
                port => format!("https://{host}:{port}"),
            };
            tracing::info!(addr = %tls, "sser listening for HTTPS");
            let plain = if api_over_http {
                "also serves the API"
            } else {
                "redirects there"
            };
            eprintln!("HTTPS (HTTP/2) at {https} (listening on {tls}); {base} {plain}");
            https
        }
        None => base,
    };
    if !generated.is_empty() {
        eprintln!(
            "No tokens configured, so these were generated for this run (APP_ENV=development):"
        );
        for (var, token) in &generated {
            eprintln!("  {var}={}", token.expose());
        }
    }
    eprintln!(
        "Try:\n  curl -X POST -H \"Authorization: Bearer $SSER_API_ACCESS_TOKEN\" {base}/api/v1/pubsubs\n"
    );
    sser::cancel_on_signals(server.shutdown_token());
    server.run().await
}

/// `--hash-password`: standard input's first line (without its line end)
/// → an argon2id PHC string on standard output.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("sser: cannot read the password from standard input: {e}");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!(
            "sser: no password on standard input (e.g. `sser --hash-password <<< 'my password'`)"
        );
        return ExitCode::from(2);
    }
    match sser::compat::gosse::hash_password(password) {
        Ok(hash) => {
            println!("{}", hash.expose());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sser: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every subscriber holds a socket. The usual soft limit of 1,024 open files
/// would cap the server at about a thousand connections, so raise it to the
/// hard limit the system allows, as Go's runtime does.
fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 4096 => tracing::warn!(
            limit,
            "the open-file limit is low; each connection needs one (raise `ulimit -n`)"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log.format.as_str() {
        "json" => true,
        "pretty" => false,
        _ => config.is_production(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
