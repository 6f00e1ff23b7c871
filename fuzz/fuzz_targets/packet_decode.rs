//! Fuzzes the wire codec with arbitrary datagrams: [`Packet::decode`] must never panic, and
//! every packet it accepts must survive the trip back to bytes: `encode` then `decode` gives
//! an equal packet, and [`Packet::encoded_len`] is exactly the length of
//! [`Packet::to_bytes`] (and of what [`Packet::encode`] appends to a non-empty buffer). It
//! does not check that the re-encoding equals the input: ACK padding and the tail of a lenient
//! ERROR are dropped by design.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tftp_handler::Packet;

fuzz_target!(|datagram: &[u8]| {
    let Ok(packet) = Packet::decode(datagram) else {
        return;
    };
    let bytes = packet.to_bytes();
    assert_eq!(
        packet.encoded_len(),
        bytes.len(),
        "encoded_len disagrees with to_bytes for {packet:?}"
    );
    // `encode` appends: what was in the buffer stays, and exactly encoded_len bytes follow.
    let mut buf = BytesMut::from(&b"prefix"[..]);
    packet.encode(&mut buf);
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(
        &buf[6..],
        &bytes[..],
        "encode and to_bytes differ for {packet:?}"
    );
    let again = Packet::decode(&bytes)
        .unwrap_or_else(|e| panic!("re-encoded {packet:?} does not decode: {e}"));
    assert_eq!(again, packet, "encode then decode changed the packet");
});
