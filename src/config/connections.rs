//! `server.*` connection limits (README, "Operations"): the timeouts that
//! bound what a client can hold without being served, the connection caps,
//! and the `server.http2` section, with the checks that refuse a limit that
//! would switch itself off.

use super::load::ConfigError;
use super::server::ServerConfig;

impl ServerConfig {
    pub(super) fn check_connections(&self) -> Result<(), ConfigError> {
        for (key, var, span) in [
            (
                "server.handshakeTimeout",
                "SSER_HANDSHAKE_TIMEOUT",
                self.handshake_timeout,
            ),
            (
                "server.headerReadTimeout",
                "SSER_HEADER_READ_TIMEOUT",
                self.header_read_timeout,
            ),
            (
                "server.requestBodyTimeout",
                "SSER_REQUEST_BODY_TIMEOUT",
                self.request_body_timeout,
            ),
            (
                "server.connectionIdleTimeout",
                "SSER_CONNECTION_IDLE_TIMEOUT",
                self.connection_idle_timeout,
            ),
            (
                "server.http2.keepAliveTimeout",
                "SSER_HTTP2_KEEP_ALIVE_TIMEOUT",
                self.http2.keep_alive_timeout,
            ),
        ] {
            if span.0.is_zero() {
                return Err(ConfigError(format!(
                    "{key} ({var}) must be above zero: without it a client that stops talking holds its connection forever"
                )));
            }
        }
        let streams = self.http2.max_concurrent_streams.0;
        if !(1..=10_000).contains(&streams) {
            return Err(ConfigError(format!(
                "server.http2.maxConcurrentStreams (SSER_HTTP2_MAX_CONCURRENT_STREAMS) must be between 1 and 10000, got {streams}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, env};

    #[test]
    fn connection_limits_from_env_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_sources(
            dir.path(),
            &env(&[
                ("SSER_HANDSHAKE_TIMEOUT", "2s"),
                ("SSER_REQUEST_BODY_TIMEOUT", "1m"),
                ("SSER_MAX_CONNECTIONS", "5000"),
                ("SSER_MAX_CONNECTIONS_PER_IP", "0"),
                ("SSER_HTTP2_KEEP_ALIVE_INTERVAL", "0"),
                ("SSER_HTTP2_MAX_CONCURRENT_STREAMS", "250"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.handshake_timeout.0.as_secs(), 2);
        assert_eq!(c.server.request_body_timeout.0.as_secs(), 60);
        assert_eq!(c.server.max_connections.0, 5000);
        assert_eq!(c.server.max_connections_per_ip.0, 0);
        assert!(c.server.http2.keep_alive_interval.0.is_zero());
        assert_eq!(c.server.http2.max_concurrent_streams.0, 250);
        let err = Config::from_sources(dir.path(), &env(&[("SSER_HANDSHAKE_TIMEOUT", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.handshakeTimeout (SSER_HANDSHAKE_TIMEOUT)"),
            "{err}"
        );
        let err = Config::from_sources(
            dir.path(),
            &env(&[("SSER_HTTP2_MAX_CONCURRENT_STREAMS", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SSER_HTTP2_MAX_CONCURRENT_STREAMS"), "{err}");
    }
}
