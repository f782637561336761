//! A dnsmasq standing in for the host's resolver in the `--allow-external` forwarding tests:
//! it listens on a loopback address of its own (127/8 is all loopback, so nothing leaves the
//! machine and parallel tests do not collide), and plg is pointed at it through
//! `PLG_HOST_RESOLV_CONF` instead of the host's /etc/resolv.conf.
//!
//! Declared from each suite next to `mod common;` as
//! `#[path = "common/dnsmasq.rs"] mod dnsmasq;`.

#![allow(dead_code)]

use crate::common::{Plg, Run, TempDir};
use std::process::{Child, Command, Stdio};

pub struct Dnsmasq {
    child: Child,
    /// The loopback address it answers on (port 53).
    pub addr: String,
    /// It answered a first query (a bounded wait, not a timing assertion).
    pub ready: bool,
    conf: String,
}

impl Dnsmasq {
    /// Starts dnsmasq on 127.`net`.x.y answering each `--address` rule given (such as
    /// `/outside.test/192.0.2.7`); the first rule's name and address tell when it is ready.
    pub fn start(dir: &TempDir, net: u8, addresses: &[&str]) -> Dnsmasq {
        let id = std::process::id();
        let addr = format!("127.{net}.{}.{}", id % 250, 1 + id % 200);
        let mut args = vec![
            "-k".to_string(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--bind-interfaces".into(),
            "--port=53".into(),
            format!("--listen-address={addr}"),
            format!("--pid-file={}", dir.join("dnsmasq.pid")),
        ];
        args.extend(addresses.iter().map(|a| format!("--address={a}")));
        let child = Command::new("dnsmasq")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let (name, want) = addresses
            .first()
            .and_then(|a| a.trim_start_matches('/').split_once('/'))
            .expect("an --address rule");
        let mut ready = false;
        for _ in 0..100 {
            let o = Command::new("dig")
                .args([&format!("@{addr}"), "+short", "+tries=1", "+time=1", name])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout).trim() == want {
                ready = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let conf = dir.join("resolv.conf");
        std::fs::write(&conf, format!("nameserver {addr}\n")).unwrap();
        Dnsmasq {
            child,
            addr,
            ready,
            conf,
        }
    }

    /// `plg record ARGS` with this dnsmasq as the host's resolver; None when it never
    /// answered (the caller asserts `ready` after dropping it).
    pub fn record(&self, args: &[&str]) -> Option<Run> {
        let env = format!("PLG_HOST_RESOLV_CONF={}", self.conf);
        let mut all = vec![env.as_str(), env!("CARGO_BIN_EXE_plg"), "record"];
        all.extend_from_slice(args);
        self.ready.then(|| Plg::wrapped("env", &all).run())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
