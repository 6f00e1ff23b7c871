//! What an operator sees at the command line: `--help`, and a listen address that is taken.

use std::time::Duration;

use crate::support::{memtftpd, strip_ansi};

/// Runs `memtftpd` with `args` to completion (bounded); its exit status and text output.
async fn run_to_exit(
    launch: crate::support::Launch,
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let mut command = launch.text_logs().args(args).command();
    command.stdout(std::process::Stdio::piped());
    let output = tokio::time::timeout(Duration::from_secs(5), command.output())
        .await
        .expect("memtftpd is still running 5 s later")
        .expect("cannot run memtftpd");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        strip_ansi(&String::from_utf8_lossy(&output.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_makes_memtftpd_exit_non_zero_saying_cannot_listen() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _, stderr) = run_to_exit(memtftpd().listen(&addr), &[]).await;
    assert!(!status.success(), "memtftpd started on a taken port");
    assert!(stderr.contains("cannot listen"), "{stderr}");
    assert!(
        stderr.contains("another process is using this port"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_memtftpd_on_the_same_port_exits_saying_cannot_listen() {
    let first = memtftpd().start().await;
    let addr = first.addr.to_string();
    let (status, _, stderr) = run_to_exit(memtftpd().listen(&addr), &[]).await;
    assert!(!status.success(), "a second memtftpd started on {addr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_exits_0_and_lists_the_flag_groups_with_their_defaults() {
    let (status, stdout, _) = run_to_exit(memtftpd(), &["--help"]).await;
    assert!(status.success(), "--help exited with {status}");
    for heading in ["Network:", "Files:", "Protocol:", "Operation:"] {
        assert!(
            stdout.contains(heading),
            "no {heading} in --help:\n{stdout}"
        );
    }
    for default in ["[default: 1GiB]", "[default: 4GiB]", "[default: 10s]"] {
        assert!(
            stdout.contains(default),
            "no {default} in --help:\n{stdout}"
        );
    }
    for flag in [
        "--max-sessions-per-peer-ip",
        "--persist",
        "--shutdown-grace",
    ] {
        assert!(stdout.contains(flag), "no {flag} in --help:\n{stdout}");
    }
}
