//! `[web]`: where the pages and `/metrics` listen, which proxies name the client, how many
//! connections at once.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    pub listen: String,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` / `Forwarded` name the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Where `/metrics` is served; `""` serves it nowhere. Never on `listen`.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// Open connections at most; the next ones wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_max_connections() -> usize {
    2048
}

impl Web {
    /// The trusted proxies as networks (validated at load).
    pub fn proxy_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies.iter().filter_map(|p| parse_network(p)).collect()
    }
}

/// `10.0.0.0/8`, `::1/128` or a plain address (one host).
pub(super) fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}
