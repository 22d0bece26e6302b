//! The limits and the alternatives, measured in the same run as udpchat: raw UDP
//! ping-pong and one-way datagrams between two sockets of this process, and ordered
//! length-prefixed messages over a TCP socket (NODELAY) and over one QUIC stream (quinn).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Raw UDP round trips per second: one socket sends a datagram, the other echoes it.
pub(crate) fn udp_ping_pong(round_trips: usize, size: usize) -> anyhow::Result<f64> {
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    a.set_read_timeout(Some(Duration::from_secs(5)))?;
    b.set_read_timeout(Some(Duration::from_secs(5)))?;
    let echo = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut buf = [0u8; 2048];
        for _ in 0..round_trips {
            let (len, _) = b.recv_from(&mut buf)?;
            b.send_to(&buf[..len], a_addr)?;
        }
        Ok(())
    });
    let payload = vec![7u8; size];
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for _ in 0..round_trips {
        a.send_to(&payload, b_addr)?;
        a.recv_from(&mut buf).context("echo lost")?;
    }
    let elapsed = start.elapsed();
    echo.join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    Ok(round_trips as f64 / elapsed.as_secs_f64())
}

/// Raw one-way datagrams per second: one socket sends as fast as it can, the other
/// counts what arrives (loopback drops what overflows the receive buffer).
pub(crate) fn udp_one_way(duration: Duration, size: usize) -> anyhow::Result<f64> {
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let rx_addr = rx.local_addr()?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let (stop_rx, count_rx) = (Arc::clone(&stop), Arc::clone(&count));
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop_rx.load(Ordering::Relaxed) {
            if rx.recv_from(&mut buf).is_ok() {
                count_rx.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let payload = vec![7u8; size];
    let start = Instant::now();
    while start.elapsed() < duration {
        for _ in 0..64 {
            let _ = tx.send_to(&payload, rx_addr);
        }
    }
    let received = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    Ok(received as f64 / elapsed.as_secs_f64())
}

/// Reads length-prefixed messages until `messages` have arrived, checking their order.
fn read_messages(mut stream: impl Read, messages: usize) -> anyhow::Result<()> {
    let mut len = [0u8; 4];
    let mut body = vec![0u8; 65_536];
    for i in 0..messages {
        stream.read_exact(&mut len)?;
        let n = u32::from_be_bytes(len) as usize;
        stream.read_exact(&mut body[..n])?;
        anyhow::ensure!(
            body[..8] == *format!("{i:08}").as_bytes(),
            "TCP message {i} out of order"
        );
    }
    Ok(())
}

fn framed(i: usize, size: usize) -> Vec<u8> {
    let text = format!("{i:08}{}", "x".repeat(size.saturating_sub(8)));
    let mut out = (text.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// Ordered messages per second over one TCP connection with NODELAY, one write per
/// message, as a chat would send them.
pub(crate) fn tcp(messages: usize, size: usize) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> anyhow::Result<Instant> {
        let (stream, _) = listener.accept()?;
        read_messages(std::io::BufReader::new(stream), messages)?;
        Ok(Instant::now())
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let start = Instant::now();
    for i in 0..messages {
        stream.write_all(&framed(i, size))?;
    }
    let end = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
    Ok(messages as f64 / (end - start).as_secs_f64())
}

/// Ordered messages per second over one QUIC stream with quinn on loopback, one write
/// per message.
pub(crate) fn quic(messages: usize, size: usize) -> anyhow::Result<f64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(quic_async(messages, size))
}

async fn quic_async(messages: usize, size: usize) -> anyhow::Result<f64> {
    use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

    let _ = quinn::rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert = CertificateDer::from(certified.cert);
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let server_config = quinn::ServerConfig::with_single_cert(vec![cert.clone()], key.into())?;
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
    let server_addr = server.local_addr()?;
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(quinn::ClientConfig::with_root_certificates(Arc::new(
        roots,
    ))?);

    let reader = tokio::spawn(async move {
        let incoming = server.accept().await.context("no connection")?;
        let connection = incoming.await?;
        let mut stream = connection.accept_uni().await?;
        let mut len = [0u8; 4];
        let mut body = vec![0u8; 65_536];
        for i in 0..messages {
            stream.read_exact(&mut len).await?;
            let n = u32::from_be_bytes(len) as usize;
            stream.read_exact(&mut body[..n]).await?;
            anyhow::ensure!(
                body[..8] == *format!("{i:08}").as_bytes(),
                "QUIC message {i} out of order"
            );
        }
        Ok::<_, anyhow::Error>(Instant::now())
    });
    let connection = client.connect(server_addr, "localhost")?.await?;
    let mut stream = connection.open_uni().await?;
    let start = Instant::now();
    for i in 0..messages {
        stream.write_all(&framed(i, size)).await?;
    }
    let end = reader.await??;
    let _ = stream.finish();
    connection.close(0u32.into(), b"done");
    Ok(messages as f64 / (end - start).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_baseline_runs() {
        assert!(udp_ping_pong(100, 100).unwrap() > 0.0);
        assert!(udp_one_way(Duration::from_millis(50), 100).unwrap() > 0.0);
        assert!(tcp(1_000, 100).unwrap() > 0.0);
        assert!(quic(1_000, 100).unwrap() > 0.0);
    }
}
