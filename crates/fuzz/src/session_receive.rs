//! Target: the receive path of a live chat, the way the program runs it (the protocol
//! session inside the encryption layer, the `Stack`), and of a clear-text one.

use std::time::{Duration, Instant};

use udpchat_proto::wire::{Frame, Packet, Payload};
use udpchat_proto::{Config, Event};
use udpchat_stack::{Security, Stack, StackEvent};

use crate::datagrams;
use crate::seeds::{live_pair, FROM, TO};

/// Messages the real peer sends during the attack.
const GENUINE: [&str; 3] = ["genuine 0", "genuine 1", "genuine 2"];

/// Encrypted: a chat with an established session gets the input's datagrams
/// ([`datagrams`]) interleaved with the real peer's messages. Invariant: it shows
/// exactly the real messages, once each, in order, and nothing from the input.
/// Clear text: a chat gets the input's datagrams; invariant: nothing panics, and any
/// message it shows was in a datagram that decodes as a valid packet (in the clear,
/// anyone may inject messages; that is what `--plaintext` means).
pub fn session_receive(data: &[u8]) -> String {
    let hostile = datagrams(data);
    let encrypted = encrypted_receive(&hostile);
    let clear = clear_receive(&hostile);
    format!("{encrypted} {clear}")
}

fn encrypted_receive(hostile: &[&[u8]]) -> String {
    let (mut a, mut b, mut now, _) = live_pair();
    let mut rejects = Vec::new();
    let mut shown = Vec::new();
    for (i, datagram) in hostile.iter().enumerate() {
        now += Duration::from_millis(3);
        if let Err(r) = b.handle_datagram(now, FROM, datagram) {
            rejects.push(r.code());
        }
        if let Some(text) = GENUINE.get(i) {
            a.send(now, (*text).to_owned())
                .unwrap_or_else(|e| panic!("cannot queue a genuine message: {e}"));
        }
        shuttle(&mut a, &mut b, now, &mut shown);
    }
    for text in GENUINE.iter().skip(hostile.len()) {
        a.send(now, (*text).to_owned())
            .unwrap_or_else(|e| panic!("cannot queue a genuine message: {e}"));
    }
    for _ in 0..50 {
        now += Duration::from_millis(200);
        a.handle_timeout(now);
        b.handle_timeout(now);
        shuttle(&mut a, &mut b, now, &mut shown);
        if shown.len() == GENUINE.len() && a.is_idle() {
            break;
        }
    }
    assert_eq!(shown, GENUINE, "the chat showed something else");
    rejects.sort_unstable();
    rejects.dedup();
    let features: Vec<String> = rejects.iter().map(|r| format!("enc:{r}")).collect();
    features.join(" ")
}

/// Moves datagrams both ways until quiet, collecting what B shows.
fn shuttle(a: &mut Stack, b: &mut Stack, now: Instant, shown: &mut Vec<String>) {
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            let _ = b.handle_datagram(now, FROM, &t.payload);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            let _ = a.handle_datagram(now, TO, &t.payload);
            moved = true;
        }
        while let Some(e) = b.poll_event() {
            if let StackEvent::Session(Event::Received { text, .. }) = e {
                shown.push(text);
            }
        }
        while a.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
}

fn clear_receive(hostile: &[&[u8]]) -> String {
    let now = Instant::now();
    let mut b = Stack::new(Config::default(), Security::Plaintext, 0xB, Some(FROM), now);
    let mut injectable = Vec::new();
    let mut shown = 0;
    for datagram in hostile {
        if let Ok(p) = Packet::decode(datagram) {
            for f in p.frames {
                if let Frame::Data {
                    payload: Payload::Text(t),
                    ..
                } = f
                {
                    injectable.push(t);
                }
            }
        }
        let _ = b.handle_datagram(now, FROM, datagram);
        while b.poll_transmit().is_some() {}
        while let Some(e) = b.poll_event() {
            if let StackEvent::Session(Event::Received { text, .. }) = e {
                assert!(
                    injectable.contains(&text),
                    "shown text {text:?} was in no valid packet"
                );
                shown += 1;
            }
        }
    }
    format!("clear:shown:{}", shown.min(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::seed_inputs;

    #[test]
    fn every_seed_input_passes() {
        for input in seed_inputs("session_receive") {
            session_receive(&input);
        }
        assert_eq!(session_receive(&[]), " clear:shown:0");
    }
}
