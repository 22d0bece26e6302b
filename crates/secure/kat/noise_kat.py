"""Independent known-answer vectors for udpchat-secure, from the `noiseprotocol` Python
package (not snow) and `cryptography`'s ChaCha20 as the seeded RNG.

    pip install noiseprotocol cryptography && python3 noise_kat.py

Prints the three values of `noise::tests::known_answer_transcript` and the datagram of
`tests::scenarios::first_initiation_is_reproducible`.
"""
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from noise.connection import NoiseConnection, Keypair
def chacha_stream(seed, n=32):
    c = Cipher(algorithms.ChaCha20(seed, b'\x00'*16), mode=None).encryptor()
    return c.update(b'\x00'*n)
def conn(initiator, seed):
    c = NoiseConnection.from_name(b'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s')
    c.set_as_initiator() if initiator else c.set_as_responder()
    c.set_psks(psk=bytes([9])*32)
    c.set_prologue(b'udpchat/v1\xe1')
    c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, chacha_stream(bytes([seed])*32))
    c.start_handshake()
    return c
i = conn(True, 1); r = conn(False, 2)
m1 = i.write_message(b'one'); assert r.read_message(m1) == b'one'
m2 = r.write_message(b'two'); assert i.read_message(m2) == b'two'
print(m1.hex()); print(m2.hex()); print(i.get_handshake_hash().hex())
import struct
master = chacha_stream(bytes([42])*32, 64)
hs_seed = master[:32]; index = int.from_bytes(master[32:36], 'little')
c = NoiseConnection.from_name(b'Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s')
c.set_as_initiator(); c.set_psks(psk=bytes([9])*32); c.set_prologue(b'udpchat/v1\xe1')
c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, chacha_stream(hs_seed)); c.start_handshake()
payload = struct.pack('>IQQI', index, 0x0102030405060708, 1_750_000_000, 0) + bytes(16)
print('endpoint', (b'\xe1' + c.write_message(payload)).hex())
