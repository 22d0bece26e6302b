//! Target: the plaintext packet decoder and the classifier that runs before it.

use udpchat_proto::wire::{classify, Frame, Packet, CRC_LEN, HEADER_LEN};

/// Decodes `data` as a udpchat packet, once as it is and once with its checksum made
/// right (so mutations get past the CRC to the frame parser). Invariants: nothing
/// panics; a packet that decodes encodes to bytes that decode to the same packet; the
/// cheap classifier agrees with the decoder on every packet the decoder accepts.
pub fn packet_decoder(data: &[u8]) -> String {
    let as_is = check(data);
    if data.len() < HEADER_LEN + CRC_LEN {
        return as_is;
    }
    let mut fixed = data.to_vec();
    let body = fixed.len() - CRC_LEN;
    let crc = crc32c::crc32c(&fixed[..body]).to_be_bytes();
    fixed[body..].copy_from_slice(&crc);
    format!("{as_is} fixed-crc:{}", check(&fixed))
}

fn check(data: &[u8]) -> String {
    let class = classify(data);
    let packet = match Packet::decode(data) {
        Ok(p) => p,
        Err(e) => return format!("err:{}", e.code()),
    };
    let again = Packet::decode(&packet.encode());
    assert_eq!(
        again.as_ref(),
        Ok(&packet),
        "re-encoding changed the packet"
    );
    assert_eq!(
        class,
        packet.classification(),
        "classify disagrees with decode"
    );
    let mut kinds: Vec<&str> = packet
        .frames
        .iter()
        .map(|f| match f {
            Frame::Hello => "hello",
            Frame::Data { .. } => "data",
            Frame::Ack(_) => "ack",
            Frame::Skip { .. } => "skip",
            Frame::Ping { .. } => "ping",
            Frame::Pong { .. } => "pong",
            Frame::Close { .. } => "close",
        })
        .collect();
    // Which kinds, not how many or in what order: a coarse outcome keeps the corpus to
    // inputs that reach something new.
    kinds.sort_unstable();
    kinds.dedup();
    format!("ok:{}", kinds.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seed_inputs;

    #[test]
    fn every_seed_input_passes() {
        for input in seed_inputs("packet_decoder") {
            packet_decoder(&input);
        }
        assert_eq!(packet_decoder(&[]), "err:too_short");
        // A damaged checksum is rejected as it is, and parsed once made right.
        let mut hello = seed_inputs("packet_decoder")
            .into_iter()
            .find(|i| packet_decoder(i) == "ok:hello fixed-crc:ok:hello")
            .unwrap();
        *hello.last_mut().unwrap() ^= 1;
        assert_eq!(
            packet_decoder(&hello),
            "err:bad_checksum fixed-crc:ok:hello"
        );
    }
}
