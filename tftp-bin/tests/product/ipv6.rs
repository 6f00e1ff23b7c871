//! `--listen [::1]:0`: real clients put and get over IPv6 loopback.

use std::net::SocketAddr;

use crate::support::{RawClient, TempDir, assert_success, client, memtftpd, pattern, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_tftp_hpa_put_and_get_byte_exact_over_ipv6_loopback() {
    let (Some(mut put), Some(mut get), Some(mut hpa)) =
        (client("curl"), client("curl"), client("tftp"))
    else {
        return;
    };
    // This machine has IPv6 loopback (`ip -6 addr show lo` lists ::1): if it is missing, that
    // is a failure, not a skip.
    let interfaces = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    assert!(
        interfaces
            .lines()
            .any(|l| l.starts_with("00000000000000000000000000000001 ") && l.ends_with(" lo")),
        "IPv6 loopback (::1) is not configured on lo:\n{interfaces}"
    );

    let server = memtftpd().listen("[::1]:0").start().await;
    assert!(server.addr.is_ipv6(), "listening on {}", server.addr);
    let scratch = TempDir::new("ipv6");
    let contents = pattern(100_000);
    let file = scratch.write("v6.bin", &contents);

    // -g: the brackets are an IPv6 literal, not a curl glob.
    put.arg("-sS")
        .arg("-g")
        .arg("-T")
        .arg(&file)
        .arg(server.url("v6.bin"));
    assert_success(&run(put).await, "curl upload over [::1]");

    get.arg("-sS").arg("-g").arg(server.url("v6.bin"));
    let output = run(get).await;
    assert_success(&output, "curl download over [::1]");
    assert!(output.stdout == contents, "curl got other bytes over [::1]");

    // tftp-hpa exits 0 even on an ERROR: the file it wrote is the proof.
    let copy = scratch.path().join("copy.bin");
    hpa.arg("-6")
        .arg("::1")
        .arg(server.addr.port().to_string())
        .args(["-m", "binary", "-c", "get", "v6.bin"])
        .arg(&copy);
    let output = run(hpa).await;
    assert_success(&output, "tftp-hpa download over [::1]");
    let got = std::fs::read(&copy).unwrap_or_else(|e| {
        panic!(
            "tftp-hpa wrote no file ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert!(got == contents, "tftp-hpa got other bytes over [::1]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_listener_serves_ipv4_and_ipv6_clients() {
    let root = TempDir::new("dual-stack");
    root.write("pxelinux.0", &pattern(3000));
    let server = memtftpd()
        .listen("[::]:0")
        .args(["--root"])
        .args([root.path()])
        .start()
        .await;
    let port = server.addr.port();
    for ip in ["127.0.0.1", "::1"] {
        let target = SocketAddr::new(ip.parse().unwrap(), port);
        let client = RawClient::bind(ip, target).await;
        let read = client.get("pxelinux.0").await;
        assert_eq!(read.unwrap(), pattern(3000), "over {ip}");
    }
}
