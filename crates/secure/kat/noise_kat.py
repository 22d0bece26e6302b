"""Independent known-answer vectors for udpchat-secure (encrypted protocol version 2),
from the `noiseprotocol` Python package (not snow), `cryptography`'s ChaCha20 as the
seeded RNG and `hashlib`'s BLAKE2s.

    pip install noiseprotocol cryptography && python3 noise_kat.py

Prints the four lines of `noise::tests::known_answer_transcript`.
"""
import hashlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from noise.connection import NoiseConnection, Keypair

def chacha_stream(seed, n=32):
    """The first n bytes of the ChaCha20 keystream under `seed` (zero nonce and counter):
    what rand_chacha's ChaCha20Rng::from_seed(seed) yields first."""
    c = Cipher(algorithms.ChaCha20(seed, b'\x00' * 16), mode=None).encryptor()
    return c.update(b'\x00' * n)

def handshake_psk(passphrase=None, pake=None):
    h = hashlib.blake2s(b'udpchat/v2/psk')
    h.update(b'\x01' + passphrase if passphrase else b'\x00')
    h.update(b'\x01' + pake if pake else b'\x00')
    return h.digest()

def conn(initiator, static, seed, prologue_extra, psk):
    c = NoiseConnection.from_name(b'Noise_XXpsk2_25519_ChaChaPoly_BLAKE2s')
    c.set_as_initiator() if initiator else c.set_as_responder()
    c.set_psks(psk=psk)
    c.set_prologue(b'udpchat/v2' + prologue_extra)
    c.set_keypair_from_private_bytes(Keypair.STATIC, static)
    c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, chacha_stream(seed))
    c.start_handshake()
    return c

psk = handshake_psk()
i = conn(True, bytes([0xA1]) * 32, bytes([1]) * 32, b'\x00', psk)
r = conn(False, bytes([0xB2]) * 32, bytes([2]) * 32, b'\x00', psk)
m1 = i.write_message(b'one'); assert r.read_message(m1) == b'one'
m2 = r.write_message(b'two'); assert i.read_message(m2) == b'two'
m3 = i.write_message(b'three'); assert r.read_message(m3) == b'three'
print(m1.hex()); print(m2.hex()); print(m3.hex()); print(i.get_handshake_hash().hex())
