//! Who we are and whom we know: this installation's identity and the peers whose keys
//! it pinned, from the data directory; or, with `--ephemeral`, a fresh identity that
//! nothing remembers.
//!
//! The encryption layer decides whom to trust from what this gives it ([`Trust`]); what
//! it learns (a first contact proved by a code or a passphrase, a known peer at a new
//! address) comes back through [`Contacts::remember`], which writes it down before the
//! conversation goes on.

use std::net::SocketAddr;
use std::path::Path;

use rand::rngs::OsRng;
use rand::TryRngCore;
use udpchat_secure::{Identity, PublicKey, Trust, Verification};

use crate::home::Home;
use crate::known_peers::{now_rfc3339_utc, KnownPeer, KnownPeers, Verified};

/// The identity and the pinned peers.
#[derive(Debug)]
pub(crate) struct Contacts {
    /// This installation's long-term key pair.
    pub(crate) identity: Identity,
    /// Where it is kept; `None` with `--ephemeral`.
    home: Option<Home>,
    /// The pinned peers; `None` with `--ephemeral`.
    known: Option<KnownPeers>,
    /// What to tell the user at start (a new identity, files open to other users).
    pub(crate) notices: Vec<String>,
    /// The identity was made by this run.
    pub(crate) created: bool,
}

impl Contacts {
    /// Opens (creating on first use) the data directory, the identity and the pinned
    /// peers; with `ephemeral`, makes a fresh identity and touches no disk.
    ///
    /// # Errors
    /// One line naming the path: no home can be determined, the directory or a file is
    /// unusable, the identity or the known peers file does not parse (never replaced).
    pub(crate) fn open(home: Option<&Path>, ephemeral: bool) -> anyhow::Result<Self> {
        if ephemeral {
            return Ok(Self {
                identity: Identity::from_private(random_key()?),
                home: None,
                known: None,
                notices: vec![
                    "--ephemeral: a fresh identity that is kept nowhere; every peer is a first contact (use --code or a passphrase)".to_owned(),
                ],
                created: true,
            });
        }
        let home = Home::resolve(home)?;
        let mut notices = home.create()?;
        let mut failure = None;
        let file = home.load_or_create_identity(|| match random_key() {
            Ok(k) => k,
            Err(e) => {
                failure = Some(e);
                [0; 32]
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        notices.extend(file.warnings.iter().cloned());
        let identity = Identity::from_private(*file.private_key);
        if file.created {
            notices.push(format!(
                "created this installation's identity in {} (fingerprint {})",
                home.identity_path().display(),
                identity.public().fingerprint()
            ));
        }
        let known = KnownPeers::load(home.known_peers_path())?;
        notices.extend(known.warnings().iter().cloned());
        Ok(Self {
            identity,
            home: Some(home),
            known: Some(known),
            notices,
            created: file.created,
        })
    }

    /// The data directory, unless `--ephemeral`.
    pub(crate) fn home(&self) -> Option<&Path> {
        self.home.as_ref().map(Home::path)
    }

    /// The pinned peers, in the file's order.
    pub(crate) fn known(&self) -> impl Iterator<Item = &KnownPeer> {
        self.known.iter().flat_map(KnownPeers::iter)
    }

    /// What the encryption layer accepts without further proof: every pinned key, and
    /// the one pinned for `peer` (at that address, any other key is refused).
    pub(crate) fn trust_for(&self, peer: Option<SocketAddr>) -> Trust {
        let pinned = self.known().map(|p| PublicKey(p.key)).collect();
        let expected = peer
            .and_then(|addr| self.known.as_ref()?.by_addr(addr))
            .map(|p| PublicKey(p.key));
        Trust { pinned, expected }
    }

    /// Writes down what a session proved: a new contact's key (pinned), or a known
    /// peer's new address. Returns a warning when it could not be written: the chat goes
    /// on, but the next one with this peer will be a first contact again.
    pub(crate) fn remember(
        &mut self,
        key: PublicKey,
        addr: SocketAddr,
        verified: Verification,
        new_contact: bool,
    ) -> Option<String> {
        let known = self.known.as_mut()?;
        let how = match verified {
            Verification::Code => Verified::Code,
            Verification::Passphrase => Verified::Passphrase,
            Verification::Pinned | Verification::Own => {
                // A known peer seen at another address: remember where it is now.
                let moved = known.by_key(&key.0).is_some_and(|p| p.addr != Some(addr));
                if !moved || new_contact {
                    return None;
                }
                return known
                    .set_addr(&key.0, Some(addr))
                    .and_then(|()| known.save())
                    .err()
                    .map(|e| format!("cannot record the peer's new address: {e}"));
            }
        };
        known
            .pin(key.0, Some(addr), how, now_rfc3339_utc())
            .and_then(|()| known.save())
            .err()
            .map(|e| {
                format!("cannot pin the peer's key ({e}); the next chat with it will be a first contact again")
            })
    }

    /// Names the pinned peer that `target` designates (its address `HOST:PORT`, or the
    /// start of its fingerprint) `name`, so `udpchat NAME` chats with it; another peer
    /// of that name loses it. Returns the peer's fingerprint.
    ///
    /// # Errors
    /// Nothing or more than one peer matches; the name is not usable; the file cannot
    /// be saved; `--ephemeral`.
    pub(crate) fn alias(&mut self, name: &str, target: &str) -> anyhow::Result<String> {
        let Some(known) = self.known.as_mut() else {
            anyhow::bail!("--ephemeral keeps no pinned peers");
        };
        let name = name.trim();
        if name.is_empty() || name.contains(':') || name.contains(char::is_whitespace) {
            anyhow::bail!(
                "a name is one word without ':' (it stands where HOST:PORT would), e.g. bob"
            );
        }
        // HOST:PORT, or an IP address alone for the default port (as `udpchat HOST`).
        let addr: Option<SocketAddr> = target.parse().ok().or_else(|| {
            target
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, crate::peer_addr::DEFAULT_PORT))
        });
        let matching: Vec<[u8; 32]> = known
            .iter()
            .filter(|p| {
                addr.is_some_and(|a| p.addr == Some(a))
                    || PublicKey(p.key).fingerprint().matches(target)
            })
            .map(|p| p.key)
            .collect();
        let key = match matching.as_slice() {
            [key] => *key,
            [] => anyhow::bail!(
                "no pinned peer at {target:?} (give HOST:PORT as `udpchat peers` shows it, or 4 or more hex digits of a fingerprint)"
            ),
            _ => anyhow::bail!("{target:?} matches {} pinned peers: give more of the fingerprint", matching.len()),
        };
        let others: Vec<[u8; 32]> = known
            .iter()
            .filter(|p| p.key != key && p.name.as_deref() == Some(name))
            .map(|p| p.key)
            .collect();
        for other in others {
            known.set_name(&other, None)?;
        }
        known.set_name(&key, Some(name))?;
        known.save()?;
        Ok(PublicKey(key).fingerprint().to_string())
    }

    /// The last address of the pinned peer named `name` (see
    /// [`key_named`](Self::key_named)), if there is one.
    pub(crate) fn address_of(&self, name: &str) -> Option<SocketAddr> {
        let key = self.key_named(name)?;
        self.known.as_ref()?.by_key(&key.0)?.addr
    }

    /// The public key of the pinned peer named `name`, if there is one: a name stands
    /// for the peer's identity, whichever address it was last seen at. A name given with
    /// `udpchat alias` first, else the nickname a pinned peer last sent (from the store).
    pub(crate) fn key_named(&self, name: &str) -> Option<PublicKey> {
        let known = self.known.as_ref()?;
        if let Some(peer) = known.by_name(name) {
            return Some(PublicKey(peer.key));
        }
        let store = udpchat_store::Store::open_read_only(self.home()?).ok()??;
        let conversation = store.conversation_named(name).ok()??;
        let key = crate::home::decode_key(conversation.strip_prefix("key:")?).ok()?;
        known.by_key(&key).map(|p| PublicKey(p.key))
    }

    /// Removes the pinned peers that `target` names: an address (`HOST:PORT`) or the start
    /// of a fingerprint (4 or more hex digits); saves; returns how many went.
    ///
    /// # Errors
    /// The file cannot be saved, or `--ephemeral` (nothing is pinned).
    pub(crate) fn forget(&mut self, target: &str) -> anyhow::Result<usize> {
        let Some(known) = self.known.as_mut() else {
            anyhow::bail!("--ephemeral keeps no pinned peers");
        };
        let addr: Option<SocketAddr> = target.parse().ok();
        let removed = known.remove_where(|p| {
            addr.is_some_and(|a| p.addr == Some(a))
                || PublicKey(p.key).fingerprint().matches(target)
        });
        if removed > 0 {
            known.save()?;
        }
        Ok(removed)
    }
}

/// 32 bytes from the operating system's CSPRNG: a new private key.
fn random_key() -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| anyhow::anyhow!("cannot read the system's random numbers: {e}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "udpchat-contacts-{}-{name}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_identity_is_made_once_and_kept() {
        let dir = scratch("keep");
        let a = Contacts::open(Some(&dir), false).unwrap();
        assert!(a.created);
        assert!(a.notices.iter().any(|n| n.contains("created")));
        let b = Contacts::open(Some(&dir), false).unwrap();
        assert!(!b.created);
        assert_eq!(a.identity.public(), b.identity.public());
        let other = Contacts::open(Some(&scratch("other")), false).unwrap();
        assert_ne!(
            a.identity.public(),
            other.identity.public(),
            "another home, another person"
        );
    }

    #[test]
    fn a_first_contact_is_pinned_to_its_address_and_trusted_there() {
        let dir = scratch("pin");
        let mut c = Contacts::open(Some(&dir), false).unwrap();
        let peer: SocketAddr = "10.0.0.2:12000".parse().unwrap();
        let key = PublicKey([7; 32]);
        assert_eq!(c.trust_for(Some(peer)), Trust::default());
        assert_eq!(c.remember(key, peer, Verification::Code, true), None);
        let again = Contacts::open(Some(&dir), false).unwrap();
        let trust = again.trust_for(Some(peer));
        assert_eq!(trust.expected, Some(key));
        assert!(trust.pinned.contains(&key));
        assert_eq!(
            again
                .trust_for(Some("10.0.0.3:12000".parse().unwrap()))
                .expected,
            None
        );
        // The peer moves: the address follows it.
        let mut c = again;
        let moved: SocketAddr = "10.0.0.9:12000".parse().unwrap();
        assert_eq!(c.remember(key, moved, Verification::Pinned, false), None);
        let c = Contacts::open(Some(&dir), false).unwrap();
        assert_eq!(c.trust_for(Some(moved)).expected, Some(key));
        assert_eq!(c.trust_for(Some(peer)).expected, None);
    }

    #[test]
    fn forget_by_address_or_fingerprint() {
        let dir = scratch("forget");
        let mut c = Contacts::open(Some(&dir), false).unwrap();
        let (k1, k2) = (PublicKey([1; 32]), PublicKey([2; 32]));
        c.remember(
            k1,
            "10.0.0.1:12000".parse().unwrap(),
            Verification::Code,
            true,
        );
        c.remember(
            k2,
            "10.0.0.2:12000".parse().unwrap(),
            Verification::Passphrase,
            true,
        );
        assert_eq!(c.forget("10.0.0.1:12000").unwrap(), 1);
        let fp = k2.fingerprint().to_string();
        assert_eq!(c.forget(&fp[..4]).unwrap(), 1);
        assert_eq!(
            Contacts::open(Some(&dir), false).unwrap().known().count(),
            0
        );
        assert_eq!(c.forget("10.0.0.1:12000").unwrap(), 0);
    }

    #[test]
    fn an_alias_names_one_pinned_peer_and_finds_its_address() {
        let dir = scratch("alias");
        let mut c = Contacts::open(Some(&dir), false).unwrap();
        let (k1, k2) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let (a1, a2): (SocketAddr, SocketAddr) = (
            "10.0.0.1:12000".parse().unwrap(),
            "10.0.0.2:12000".parse().unwrap(),
        );
        c.remember(k1, a1, Verification::Code, true);
        c.remember(k2, a2, Verification::Code, true);
        assert_eq!(
            c.alias("bob", "10.0.0.1:12000").unwrap(),
            k1.fingerprint().to_string()
        );
        // The name moves to another peer, and is kept on disk.
        c.alias("bob", &k2.fingerprint().to_string()[..4]).unwrap();
        let again = Contacts::open(Some(&dir), false).unwrap();
        assert_eq!(again.address_of("bob"), Some(a2));
        assert_eq!(again.known().filter(|p| p.name.is_some()).count(), 1);
        assert!(c.alias("bob", "10.0.0.9:12000").is_err(), "nobody there");
        assert!(c.alias("bo b", "10.0.0.1:12000").is_err());
        assert!(c.alias("h:1", "10.0.0.1:12000").is_err());
    }

    #[test]
    fn ephemeral_touches_no_disk() {
        let c = Contacts::open(None, true).unwrap();
        assert!(c.home().is_none());
        assert_eq!(c.trust_for(None), Trust::default());
        let d = Contacts::open(None, true).unwrap();
        assert_ne!(c.identity.public(), d.identity.public());
    }
}
