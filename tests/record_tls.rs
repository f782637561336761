//! TLS keys into the capture: every recorded process gets `SSLKEYLOGFILE`; plg stores what the
//! TLS libraries log there as Decryption Secrets Blocks, `plg export --pcapng` puts them before
//! the packets, and tshark decrypts the export with no configuration. `plg inspect` tells the
//! TLS connections and whether their keys are there.
//!
//! Real programs: nginx with a self-signed certificate and curl (OpenSSL), and Python's `ssl`
//! on both sides. They need root, nginx, openssl, curl, python3 and tshark (CI installs them).

mod common;

use common::*;
use std::process::Command;

/// A self-signed certificate for `name`, as cert.pem and key.pem in `dir`.
fn certificate(dir: &TempDir, name: &str) {
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .args([
            "-keyout",
            &dir.join("key.pem"),
            "-out",
            &dir.join("cert.pem"),
        ])
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn export_pcapng(cap: &str, out: &str) {
    let res = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["export", "-q", cap, "--pcapng", out])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// `tshark -r FILE -Y http` fields, with no key file option: only the capture's own secrets.
fn decrypted_http(file: &str) -> Vec<String> {
    let out = Command::new("tshark")
        .args([
            "-r",
            file,
            "-Y",
            "http",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ])
        .args(["-e", "http.response.code", "-e", "http.file_data"])
        .output()
        .expect("tshark must be installed (apt-get install tshark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

fn inspect_json(cap: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["inspect", "--json", cap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn nginx_and_curl_exports_decrypt_with_no_configuration() {
    let dir = TempDir::new("tls-nginx");
    certificate(&dir, "p0");
    let d = dir.path().display().to_string();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;\n\
         error_log stderr;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
           fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
           server {{ listen 443 ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n\
             location / {{ return 200 \"hello over tls\\n\"; }} }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let cap = dir.join("tls.traffic");
    // Two requests: the first with the key log plg sets up, the second with it taken away
    // (as a program that ignores SSLKEYLOGFILE would), so one connection has keys, one not.
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--ready",
        "p0:443",
        &format!("nginx -c {d}/nginx.conf"),
        "curl -sk https://p0/first && env -u SSLKEYLOGFILE curl -sk https://p0/second",
    ])
    .run();
    run.assert_code(0);
    assert_eq!(
        run.output_of("p1"),
        "hello over tls\nhello over tls",
        "{}",
        run.dump()
    );

    let info = inspect_json(&cap);
    assert_eq!(info["tls"]["connections"], 2, "{info}");
    assert_eq!(info["tls"]["with_keys"], 1, "{info}");
    assert_eq!(
        info["tls"]["without_keys"],
        serde_json::json!([1]),
        "{info}"
    );
    let human = Command::new(env!("CARGO_BIN_EXE_plg"))
        .args(["inspect", &cap])
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("tls         2 connections, keys for 1")
            && human.contains("no keys for connection 1"),
        "{human}"
    );

    let export = dir.join("tls.pcapng");
    export_pcapng(&cap, &export);
    let http = decrypted_http(&export);
    assert!(
        http.iter().any(|l| l.starts_with("0|GET|/first|")),
        "request not decrypted: {http:?}"
    );
    assert!(
        http.iter().any(|l| l.starts_with("0|||200")),
        "response not decrypted: {http:?}"
    );
    assert!(
        !http.iter().any(|l| l.contains("/second")),
        "decrypted without keys? {http:?}"
    );
    // The keys were also logged to the capture itself, not only to the export.
    let out = Command::new("tshark")
        .args(["-r", &cap, "-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark reads the capture with its DSB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_ssl_on_both_sides_exports_decrypt_with_no_configuration() {
    let dir = TempDir::new("tls-python");
    certificate(&dir, "srv");
    let d = dir.path().display().to_string();
    let server = format!(
        "import http.server, ssl\n\
         ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)\n\
         ctx.load_cert_chain('{d}/cert.pem', '{d}/key.pem')\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       body = b'python says hi\\n'\n\
         \x20       self.send_response(200)\n\
         \x20       self.send_header('Content-Length', str(len(body)))\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(body)\n\
         s = http.server.HTTPServer(('0.0.0.0', 8443), H)\n\
         s.socket = ctx.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n"
    );
    let client = "import ssl, urllib.request\n\
         ctx = ssl.create_default_context()\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         print(urllib.request.urlopen('https://srv:8443/hello', context=ctx).read().decode(), end='')\n";
    std::fs::write(dir.path().join("server.py"), server).unwrap();
    std::fs::write(dir.path().join("client.py"), client).unwrap();
    let cap = dir.join("py.traffic");
    let run = Plg::record(&[
        "-q",
        "-f",
        &cap,
        "--names",
        "srv,cli",
        "--ready",
        "srv:8443",
        &format!("{PY} {d}/server.py"),
        &format!("{PY} {d}/client.py"),
    ])
    .run();
    run.assert_code(0);
    assert_eq!(run.output_of("cli"), "python says hi", "{}", run.dump());

    let info = inspect_json(&cap);
    assert_eq!(info["tls"]["connections"], 1, "{info}");
    assert_eq!(info["tls"]["with_keys"], 1, "{info}");
    // TLS 1.3: several secrets per session, logged by both ends, kept once each.
    assert!(info["tls"]["key_lines"].as_u64().unwrap() >= 4, "{info}");

    let export = dir.join("py.pcapng");
    export_pcapng(&cap, &export);
    let http = decrypted_http(&export);
    assert!(
        http.iter().any(|l| l.starts_with("0|GET|/hello|")),
        "{http:?}"
    );
    assert!(http.iter().any(|l| l.starts_with("0|||200|")), "{http:?}");
}
