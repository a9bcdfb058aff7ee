//! Messages the node sends to other connectors: a small pool of sender threads (so a slow
//! counter-party never holds an HTTP worker), the address policy that keeps a hostile
//! `callbackAddress` from pointing the node at its own network, and the signed bearer token
//! every message carries.

use super::{ContractError, Result};
use serde_json::Value as Json;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A job for the sender threads.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// The sender threads.
#[derive(Debug)]
pub struct Outbox {
    sender: Mutex<Sender<Job>>,
}

impl Outbox {
    /// Starts `threads` sender threads.
    pub fn new(threads: usize) -> Self {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver: Arc<Mutex<Receiver<Job>>> = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dsp-outbox-{index}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let guard = receiver.lock().unwrap_or_else(|p| p.into_inner());
                            guard.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a DSP sender thread");
            }
        }
        Self {
            sender: Mutex::new(sender),
        }
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if sender.send(job).is_err() {
            tracing::error!("the DSP sender threads are gone; a message was not sent");
        }
    }
}

/// Where the node may send messages.
#[derive(Debug, Clone, Copy)]
pub struct AddressPolicy {
    /// Whether loopback, private and link-local addresses are allowed (tests, one-machine demos).
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Checks a counter-party's URL before anything is stored or sent: an absolute http(s) URL
    /// without credentials, whose host is not on the node's own network (unless allowed).
    pub fn check(&self, url: &str) -> Result<()> {
        let refuse = |why: &str| {
            ContractError::BadMessage(format!("the address `{}` is refused: {why}", shorten(url)))
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| refuse("only http:// and https:// addresses are called"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(refuse("it names no host"));
        }
        if authority.contains('@') {
            return Err(refuse("credentials in URLs are not sent"));
        }
        if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("it is not a well-formed URL"));
        }
        if self.allow_private {
            return Ok(());
        }
        let host = host_of(authority);
        if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") {
            return Err(refuse("it points at this machine"));
        }
        let port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .unwrap_or(if url.starts_with("https") { 443 } else { 80 });
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, port)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .unwrap_or_default(),
        };
        if addresses.iter().any(|ip| is_internal(*ip)) {
            return Err(refuse(
                "it resolves to a loopback, private or link-local address",
            ));
        }
        Ok(())
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                // 0.0.0.0/8, "this network" (RFC 6890): never a peer, and Linux ≥ 5.3 may
                // route it locally (found by the `url_policy` fuzz target: 0.0.0.1 passed).
                || v4.octets()[0] == 0
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

fn shorten(url: &str) -> String {
    url.chars().take(120).collect()
}

/// What the other connector answered.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, if it was JSON.
    pub body: Option<Json>,
}

/// Sends one message (`POST`) or reads one resource (`GET`, `body` `None`), with the bearer
/// token, within ten seconds, following no redirects.
pub fn call(url: &str, token: &str, body: Option<&Json>) -> Result<Answer> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .max_redirects(0)
        .http_status_as_error(false)
        .tls_config(crate::federation::outbound::node_tls())
        .build()
        .into();
    let authorization = format!("Bearer {token}");
    let response = match body {
        Some(body) => agent
            .post(url)
            .header("Authorization", &authorization)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
        None => agent
            .get(url)
            .header("Authorization", &authorization)
            .header("Accept", "application/json")
            .call(),
    };
    let mut response = response.map_err(|e| ContractError::Unreachable {
        url: shorten(url),
        message: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_string()
        .unwrap_or_default();
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = AddressPolicy {
            allow_private: false,
        };
        for url in [
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://10.1.2.3/cb",
            "http://169.254.169.254/latest",
            "http://[::1]:80/cb",
            "http://[::ffff:127.0.0.1]/cb",
            "http://0.0.0.1:8080/cb",
            "file:///etc/passwd",
            "http://user:pw@example.org/cb",
            "gopher://example.org/",
        ] {
            assert!(strict.check(url).is_err(), "{url}");
        }
        assert!(strict.check("https://93.184.215.14/dsp").is_ok());
        let loose = AddressPolicy {
            allow_private: true,
        };
        assert!(loose.check("http://127.0.0.1:8080/cb").is_ok());
        assert!(loose.check("file:///etc/passwd").is_err());
    }
}
