//! Other tools read our captures: Wireshark's `tshark` and `capinfos`, without an error or a
//! warning, and the `pcap-file` crate's pcapng reader as an independent parser.
//!
//! tshark is required, not optional: if it is missing these tests fail and say to install it
//! (CI installs it), so that a green run always means the check really ran.

use plg::format::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A capture holding every kind of block plg writes.
fn every_block_kind() -> Vec<u8> {
    let start = 1_700_000_000_123_456_789;
    let session = Session {
        format_version: FORMAT_VERSION,
        mode: Mode::Record,
        subnet: Ipv4Addr::new(10, 0, 0, 0),
        prefix_len: 24,
        subnet6: None,
        start_ns: start,
        plg_version: "0.1.0".into(),
    };
    let processes = [
        Process {
            index: 0,
            name: "client".into(),
            command: "curl http://10.0.0.2/".into(),
            addr: Ipv4Addr::new(10, 0, 0, 1),
            addr6: None,
            live: true,
        },
        Process {
            index: 1,
            name: "server".into(),
            command: "python3 -m http.server 80".into(),
            addr: Ipv4Addr::new(10, 0, 0, 2),
            addr6: None,
            live: false,
        },
    ];
    let mut w = CaptureWriter::new(Vec::new(), &session, &processes).unwrap();
    let client = SocketAddrV4::new(processes[0].addr, 40000);
    let server = SocketAddrV4::new(processes[1].addr, 80);
    w.write(&Record::ConnOpen(ConnOpen {
        id: 0,
        time_ns: start + 1000,
        client: 0,
        client_addr: client.into(),
        server: 1,
        server_addr: server.into(),
        outcome: Outcome::Established,
    }))
    .unwrap();
    w.write_data(
        0,
        Direction::ClientToServer,
        start + 2000,
        b"GET / HTTP/1.0\r\n\r\n",
    )
    .unwrap();
    // A UDP datagram 10.0.0.1:4660 -> 10.0.0.2:22136, with a valid IPv4 checksum.
    let udp = [
        0x45, 0, 0, 0x1c, 0, 0, 0, 0, 0x40, 0x11, 0x26, 0xce, 10, 0, 0, 1, 10, 0, 0, 2, 0x12, 0x34,
        0x56, 0x78, 0, 8, 0, 0,
    ];
    w.write_packet(0, start + 2500, &udp).unwrap();
    w.write(&Record::Data(Data {
        id: 0,
        dir: Direction::ServerToClient,
        time_ns: start + 3000,
        bytes: b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec(),
    }))
    .unwrap();
    for (dir, t) in [
        (Direction::ServerToClient, 4000),
        (Direction::ClientToServer, 5000),
    ] {
        w.write(&Record::ConnClose(ConnClose {
            id: 0,
            dir,
            kind: CloseKind::Fin,
            time_ns: start + t,
        }))
        .unwrap();
    }
    w.write(&Record::ProcessExit(ProcessExit {
        index: 0,
        time_ns: start + 6000,
        status: ExitStatus::Exited(0),
    }))
    .unwrap();
    w.finish(&Summary {
        end_ns: start + 7000,
        processes: 2,
        connections: 1,
        data_blocks: 2,
        bytes_c2s: 18,
        bytes_s2c: 24,
        packets: 1,
        ..Summary::default()
    })
    .unwrap()
}

fn temp_capture(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("plg-{}-{name}.traffic", std::process::id()));
    std::fs::write(&path, every_block_kind()).unwrap();
    path
}

/// Runs a Wireshark tool; fails loudly if it is not installed.
fn run(tool: &str, args: &[&str], path: &Path) -> (String, String) {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{tool}` ({e}): install it to run this test \
                 (Debian/Ubuntu: apt-get install tshark)"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Wireshark warns on stderr when run as root; that is about the machine, not the file.
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Running as user \"root\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        out.status.success(),
        "{tool} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

#[test]
fn tshark_reads_every_block_kind_without_complaint() {
    let path = temp_capture("tshark");
    let (stdout, stderr) = run("tshark", &["-r"], &path);
    assert_eq!(stderr, "", "tshark complained");
    // Ten custom blocks (session, 2 processes, open, 2 data, 2 closes, exit, summary) and one
    // packet, each shown as a frame.
    assert_eq!(stdout.lines().count(), 10 + 1, "{stdout}");
    assert!(
        stdout.contains("10.0.0.1 → 10.0.0.2") && stdout.contains("UDP"),
        "{stdout}"
    );
    assert!(stdout.contains("32473"), "{stdout}");
    let (verbose, stderr) = run("tshark", &["-V", "-r"], &path);
    assert_eq!(stderr, "", "tshark -V complained");
    assert!(
        verbose.contains("Expert Info") == verbose.contains("Malformed"),
        "{verbose}"
    );
    assert!(!verbose.contains("Malformed"), "{verbose}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn capinfos_reads_interfaces_and_packets() {
    let path = temp_capture("capinfos");
    let (stdout, stderr) = run("capinfos", &[], &path);
    assert_eq!(stderr, "", "capinfos complained");
    for expected in [
        "pcapng",
        "Raw IP",
        "nanoseconds",
        "Number of packets:   1",
        "Capture application: plg 0.1.0",
        "Number of interfaces in file: 2",
        "Name = client",
        "Description = python3 -m http.server 80",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    std::fs::remove_file(path).unwrap();
}

#[test]
fn pcap_file_crate_parses_every_block() {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let file = every_block_kind();
    let mut reader = PcapNgReader::new(&file[..]).unwrap();
    let shb = reader.section().clone();
    assert!(shb
        .options
        .iter()
        .any(|o| format!("{o:?}").contains("plg 0.1.0")));
    let (mut interfaces, mut packets, mut custom) = (vec![], vec![], 0);
    while let Some(block) = reader.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(idb) => interfaces.push(idb.into_owned()),
            Block::EnhancedPacket(epb) => packets.push(epb.into_owned()),
            Block::Unknown(u) => {
                assert_eq!(u.type_, 0xBAD);
                assert_eq!(&u.value[..4], &PEN.to_le_bytes());
                custom += 1;
            }
            other => panic!("unexpected block {other:?}"),
        }
    }
    assert_eq!(interfaces.len(), 2);
    assert_eq!(u32::from(interfaces[0].linktype), 101);
    assert_eq!(interfaces[0].snaplen, 0);
    assert_eq!(custom, 10);
    assert_eq!(packets.len(), 1);
    assert_eq!(packets[0].interface_id, 0);
    assert_eq!(
        packets[0].timestamp.as_nanos(),
        1_700_000_000_123_456_789 + 2500
    );
    assert_eq!(packets[0].data.len(), 28);
}
