//! `sser-bench`: a load generator for SSE pub/sub servers.
//!
//! Scenarios: `fanout` (delivery rate, loss and publish→receive latency),
//! `idle` (many held connections: connect rate and server memory per
//! connection), `connect` (connection churn), `flood` (silent connections
//! against `/healthz`) and `soak` (minutes of churn and floods, with the
//! server's RSS over time), and `hold` + `send` (one broadcast to more
//! subscribers than one process may hold, over several processes and cluster
//! nodes, merged by `bench/cluster-100k.sh`). Targets: our API, which is
//! the original SSER's (topics are created with the API token), or any SSE
//! server through URL templates (`--subscribe-url`/`--publish-url`).
//! `fanout --to users|app` and `idle --identities` measure our identity
//! streams and targeted sends instead of topics.
//!
//! Built to not be the bottleneck: a hand-written HTTP/1.1 + SSE client (one
//! task and one small buffer per connection), few threads, connections spread
//! over many loopback source addresses, and its own CPU time in every report.
//!
//! Modules: [`http`] the client, [`sse`] the parser, [`target`] what is
//! measured, [`identity`] identities and their tokens, [`sub`] one subscriber, [`stats`] clocks, histograms and /proc,
//! [`rss`] a server's memory over time, and one module per scenario.

mod connect;
mod fanout;
mod flood;
mod hold;
mod http;
mod identity;
mod idle;
mod rss;
mod send;
mod soak;
mod sse;
mod stats;
mod sub;
mod target;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(
    name = "sser-bench",
    version,
    about = "Load generator for SSE pub/sub servers (sser, SSER, nchan, ...)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// T topics × N subscribers, P publishers: deliveries/s, loss, latency.
    // A later --flag wins, so scripts can append overrides to presets.
    #[command(args_override_self = true)]
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: fanout::FanoutArgs,
    },
    /// Open and hold N connections: connect rate, server RSS per connection.
    // A later --flag wins, so scripts can append overrides to presets.
    #[command(args_override_self = true)]
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: idle::IdleArgs,
    },
    /// Connection churn: connect, receive one event, disconnect.
    // A later --flag wins, so scripts can append overrides to presets.
    #[command(args_override_self = true)]
    Connect {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: connect::ConnectArgs,
    },
    /// Minutes of churn and floods, sampling the server's RSS over time.
    #[command(args_override_self = true)]
    Soak {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: soak::SoakArgs,
    },
    /// N silent (or half-HTTP/2) connections while /healthz is probed.
    #[command(args_override_self = true)]
    Flood {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: flood::FloodArgs,
    },
    /// Hold N subscribers of an existing topic; report per-event deliveries.
    #[command(args_override_self = true)]
    Hold {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: hold::HoldArgs,
    },
    /// Publish E numbered events to an existing topic (for `hold`).
    #[command(args_override_self = true)]
    Send {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: send::SendArgs,
    },
}

/// Options every scenario shares.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Base URL of an sser/SSER server (our API mode).
    #[arg(long, default_value = "http://127.0.0.1:8889")]
    url: String,
    /// API token for creating topics (our API mode).
    #[arg(long, env = "SSER_API_ACCESS_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Our API on a cluster: base URLs of the nodes subscribers connect to
    /// (repeatable; subscriber i goes to the i-th mod their number), while
    /// topics are created and published on `--url`.
    #[arg(long = "subscribe-via")]
    subscribe_via: Vec<String>,
    /// Generic mode: subscribe URL template, e.g. 'http://127.0.0.1:8890/sub/{topic}'.
    #[arg(long)]
    subscribe_url: Option<String>,
    /// Generic mode: publish URL template, e.g. 'http://127.0.0.1:8890/pub/{topic}'.
    #[arg(long)]
    publish_url: Option<String>,
    /// Publish body template containing {payload} (generic default: '{payload}';
    /// our API: '{"event":{"message":"{payload}"}}').
    #[arg(long)]
    body: Option<String>,
    /// Extra publish request header 'Name: value' (repeatable).
    #[arg(long = "pub-header")]
    pub_headers: Vec<String>,
    /// Extra subscribe request header 'Name: value' (repeatable).
    #[arg(long = "sub-header")]
    sub_headers: Vec<String>,
    /// Our API: create persistent topics (the server needs its store enabled),
    /// so publishes take the durable path.
    #[arg(long)]
    persist: bool,
    /// Seed for everything random (payload padding, topic names, churn order).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the tool itself.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Connects in flight at once while opening subscribers.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Loopback source addresses to spread subscriber connections over
    /// (0 = one per 20,000 connections).
    #[arg(long, default_value_t = 0)]
    source_ips: usize,
    /// A name for the target in reports (default: the URL).
    #[arg(long)]
    label: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit 0 even if events were lost or connections failed.
    #[arg(long)]
    allow_loss: bool,
}

impl Common {
    fn target_spec(&self) -> target::TargetSpec {
        target::TargetSpec {
            url: self.url.clone(),
            api_token: self.api_token.clone(),
            subscribe_url: self.subscribe_url.clone(),
            subscribe_via: self.subscribe_via.clone(),
            publish_url: self.publish_url.clone(),
            body: self.body.clone(),
            pub_headers: self.pub_headers.clone(),
            sub_headers: self.sub_headers.clone(),
            seed: self.seed,
            persist: self.persist,
        }
    }

    fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| {
            self.subscribe_url
                .clone()
                .unwrap_or_else(|| self.url.clone())
        })
    }

    fn spread(&self, connections: usize) -> usize {
        if self.source_ips > 0 {
            self.source_ips
        } else {
            connections.div_ceil(20_000)
        }
    }
}

pub struct Outcome {
    pub report: Value,
    /// Loss, failed connections or errors: the exit code says so.
    pub failed: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.scenario {
        Scenario::Fanout { common, .. }
        | Scenario::Idle { common, .. }
        | Scenario::Connect { common, .. }
        | Scenario::Soak { common, .. }
        | Scenario::Flood { common, .. }
        | Scenario::Hold { common, .. }
        | Scenario::Send { common, .. } => common.clone(),
    };
    let nofile = stats::raise_nofile(1_100_000);
    let load_start = stats::loadavg();
    let mut rt = if common.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(common.threads);
        b
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sser-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        match &cli.scenario {
            Scenario::Fanout { common, args } => fanout::run(common, args).await,
            Scenario::Idle { common, args } => idle::run(common, args).await,
            Scenario::Connect { common, args } => connect::run(common, args).await,
            Scenario::Soak { common, args } => soak::run(common, args).await,
            Scenario::Flood { common, args } => flood::run(common, args).await,
            Scenario::Hold { common, args } => hold::run(common, args).await,
            Scenario::Send { common, args } => send::run(common, args).await,
        }
    });
    match result {
        Ok(mut outcome) => {
            if let Value::Object(map) = &mut outcome.report {
                map.insert("bench_nofile_limit".into(), nofile.into());
                // Other work on the box skews every number: say how busy it was.
                map.insert("loadavg_1m_start".into(), load_start.into());
                map.insert("loadavg_1m_end".into(), stats::loadavg().into());
            }
            if common.json {
                println!("{}", outcome.report);
            } else {
                print_table(&outcome.report, "");
            }
            if outcome.failed && !common.allow_loss {
                eprintln!("sser-bench: loss or errors (see above); --allow-loss to exit 0");
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("sser-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// The report as aligned `key  value` lines, nested objects flattened.
fn print_table(v: &Value, prefix: &str) {
    let Value::Object(map) = v else { return };
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(_) => print_table(v, &key),
            Value::Null => {}
            Value::Number(n) if n.is_f64() => {
                println!("{key:<36} {:.3}", n.as_f64().unwrap_or(0.0));
            }
            Value::String(s) => println!("{key:<36} {s}"),
            other => println!("{key:<36} {other}"),
        }
    }
}
