"""An independent reading of docs/PROTOCOL.md section 9 (encrypted protocol version 3):
rebuilds the `transcript-pinned`, `transcript-pinned-aesgcm`, `transcript-cookie` and
`transcript-code` vectors from
the document's rules alone, with the `noiseprotocol` Python package (not snow),
`cryptography`'s ChaCha20 as the seeded random stream and X25519, `hashlib`'s BLAKE2s,
PyNaCl's XChaCha20-Poly1305 and magic-wormhole's `spake2`.

    pip install noiseprotocol cryptography pynacl spake2
    python3 v3_transcript.py ../../../docs/PROTOCOL.md

Exits with status 1 and names the first vector that differs.
"""
import hashlib, re, struct, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives import serialization
from noise.connection import NoiseConnection, Keypair

class Stream:
    """rand_chacha's ChaCha20Rng::from_seed(seed): the ChaCha20 keystream, nonce and
    counter zero, consumed in order."""
    def __init__(self, seed):
        c = Cipher(algorithms.ChaCha20(seed, b'\x00' * 16), mode=None).encryptor()
        self.bytes = c.update(b'\x00' * 4096)
        self.pos = 0
    def take(self, n):
        out = self.bytes[self.pos:self.pos + n]
        self.pos += n
        return out
    def u32(self):
        return struct.unpack('<I', self.take(4))[0]

def public(private):
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)

def mac(key, data):
    return hashlib.blake2s(data, key=key, digest_size=16).digest()

def b2(*parts):
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()

def vectors(doc, block):
    body = doc.split('```secure-vectors ' + block + '\n')[1].split('```')[0]
    return dict((k.strip(), v.strip()) for k, v in (l.split('=', 1) for l in body.splitlines() if '=' in l))

doc = open(sys.argv[1] if len(sys.argv) > 1 else 'docs/PROTOCOL.md').read()
ids = vectors(doc, 'identities')
want = vectors(doc, 'transcript-pinned')
sa, sb = bytes.fromhex(ids['private_a']), bytes.fromhex(ids['private_b'])
pa, pb = public(sa), public(sb)
assert pa.hex() == ids['public_a'] and pb.hex() == ids['public_b']
# The version byte of every handshake message (section 9.2).
VERSION = 3
fp = lambda k: '-'.join(b2(b'udpchat/v2/fingerprint', k)[:16].hex()[i:i + 4] for i in range(0, 32, 4))
assert fp(pa) == ids['fingerprint_a'] and fp(pb) == ids['fingerprint_b']

ra, rb = Stream(b'\x0a' * 32), Stream(b'\x0b' * 32)
ra.take(32); rb.take(32)                                 # cookie secrets
index_a = ra.u32()
ea = Stream(ra.take(32)).take(32)                        # A's ephemeral private key
psk = b2(b'udpchat/v2/psk', b'\x00', b'\x00')

CHACHA = b'Noise_XXpsk2_25519_ChaChaPoly_BLAKE2s'
AESGCM = b'Noise_XXpsk2_25519_AESGCM_BLAKE2s'    # initiation flag 0x02 (section 9.1)

def conn(initiator, static, eph, header, name=CHACHA):
    c = NoiseConnection.from_name(name)
    c.set_as_initiator() if initiator else c.set_as_responder()
    c.set_psks(psk=psk)
    c.set_prologue(b'udpchat/v2' + header)
    c.set_keypair_from_private_bytes(Keypair.STATIC, static)
    c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, eph)
    c.start_handshake()
    return c

hs_seed_b = rb.take(32)
index_b = rb.u32()
eb = Stream(hs_seed_b).take(32)

def pinned(flags, name):
    """The pinned handshake (MAC1 keyed by B's public key) with these initiation flags
    and this pattern: the two connections and the three handshake messages."""
    header = bytes([0xD1, VERSION, flags]) + struct.pack('>I', index_a)
    a = conn(True, sa, ea, header, name)
    body = header + a.write_message(bytes(61))
    body += mac(b2(b'udpchat/v2/mac1/static', pb), body)
    initiation = body + bytes(16)
    b = conn(False, sb, eb, header, name)
    assert b.read_message(initiation[7:116]) == bytes(61)
    response = bytes([0xD2, VERSION, 0]) + struct.pack('>I', index_a) + bytes(33) + \
        b.write_message(struct.pack('>IQ', index_b, 0xB))
    assert a.read_message(response[40:]) == struct.pack('>IQ', index_b, 0xB)
    finish = bytes([0xD3, VERSION]) + struct.pack('>I', index_b) + \
        a.write_message(struct.pack('>Q', 0xA))
    assert b.read_message(finish[6:]) == struct.pack('>Q', 0xA)
    return a, b, {'initiation': initiation, 'response': response, 'finish': finish}

def transport(index, n, ct):
    return bytes([0xD5]) + struct.pack('>IQ', index, n) + ct

def after_handshake(a, b, index_a, index_b):
    """The packets every transcript ends with, in the order the document makes them:
    B's keepalive, A's 'hello', B's 'hi'; and the handshake hash."""
    return {'keepalive': transport(index_a, 0, b.encrypt(b'')),
            'transport_a': transport(index_b, 0, a.encrypt(b'hello')),
            'transport_b': transport(index_a, 1, b.encrypt(b'hi')),
            'handshake_hash': a.get_handshake_hash()}

def check(name, got, want, how='independently'):
    """Every vector of transcript `name` as computed here, or exit 1 at the first that
    differs from the document."""
    for k, v in got.items():
        if v.hex() != want[k]:
            print('MISMATCH', name, k, v.hex(), want[k])
            sys.exit(1)
    print(f'transcript-{name}: all', len(got), 'vectors reproduced', how)

a, b, got = pinned(0, CHACHA)
check('pinned', {**got, **after_handshake(a, b, index_a, index_b)}, want)

# transcript-pinned-aesgcm: the same two with the initiation's flag 0x02, so the pattern
# is AESGCM (its nonces big-endian); the same random streams.
want = vectors(doc, 'transcript-pinned-aesgcm')
a, b, got = pinned(0x02, AESGCM)
check('pinned-aesgcm', {**got, **after_handshake(a, b, index_a, index_b)}, want)

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt as xseal

A_ADDR = bytes([192, 0, 2, 1]) + struct.pack('>H', 12000)

def cookie_reply(rng_b, secret_b, initiation, k1, index):
    """B's cookie reply to an initiation from A's address, and A's MAC2 with it."""
    cookie = mac(secret_b, A_ADDR)
    nonce = rng_b.take(24)
    sealed = xseal(cookie, initiation[116:132], nonce, b2(b'udpchat/v2/cookie', k1))
    reply = bytes([0xD4, VERSION]) + struct.pack('>I', index) + nonce + sealed
    return reply, initiation[:132] + mac(cookie, initiation[:132])

# transcript-cookie: B under load.
want = vectors(doc, 'transcript-cookie')
ra, rb = Stream(b'\x0a' * 32), Stream(b'\x0b' * 32)
ra.take(32)
secret_b = rb.take(32)
index_a = ra.u32()
ea = Stream(ra.take(32)).take(32)
header = bytes([0xD1, VERSION, 0]) + struct.pack('>I', index_a)
a = conn(True, sa, ea, header)
k1 = b2(b'udpchat/v2/mac1/static', pb)
body = header + a.write_message(bytes(61))
body += mac(k1, body)
initiation = body + bytes(16)
reply, again = cookie_reply(rb, secret_b, initiation, k1, index_a)
hs_seed_b = rb.take(32)
index_b = rb.u32()
b = conn(False, sb, Stream(hs_seed_b).take(32), header)
assert b.read_message(again[7:116]) == bytes(61)
response = bytes([0xD2, VERSION, 0]) + struct.pack('>I', index_a) + bytes(33) + \
    b.write_message(struct.pack('>IQ', index_b, 0xB))
assert a.read_message(response[40:]) == struct.pack('>IQ', index_b, 0xB)
finish = bytes([0xD3, VERSION]) + struct.pack('>I', index_b) + a.write_message(struct.pack('>Q', 0xA))
b.read_message(finish[6:])
got = {'initiation': initiation, 'cookie_reply': reply, 'initiation_with_mac2': again,
       'response': response, 'finish': finish, **after_handshake(a, b, index_a, index_b)}
check('cookie', got, want)

# transcript-code: the same, with the invitation code through SPAKE2, computed with
# python-spake2 (magic-wormhole's library, `pip install spake2`). The scalar is drawn as
# curve25519-dalek's Scalar::random does: 64 bytes of the stream, little-endian, mod L.
try:
    from spake2 import SPAKE2_Symmetric
except ImportError:
    print('transcript-code: skipped (pip install spake2)')
    sys.exit(0)
L = 2**252 + 27742317777372353535851937790883648493
want = vectors(doc, 'transcript-code')

def spake(rng, password):
    scalar = int.from_bytes(rng.take(64), 'little') % L
    s = SPAKE2_Symmetric(password, idSymmetric=b'udpchat/v2/invite')
    group = s.params.group
    original = group.random_scalar
    group.random_scalar = lambda entropy_f: scalar
    try:
        msg = s.start()
    finally:
        group.random_scalar = original
    return s, msg

ra, rb = Stream(b'\x0a' * 32), Stream(b'\x0b' * 32)
ra.take(32)
secret_b = rb.take(32)
code = b'7-ribbon-tunnel'
sp_a, msg_a = spake(ra, code)
index_a = ra.u32()
ea = Stream(ra.take(32)).take(32)
header = bytes([0xD1, VERSION, 1]) + struct.pack('>I', index_a)
k1 = b2(b'udpchat/v2/mac1/open')
a = conn(True, sa, ea, header)
body = header + a.write_message(msg_a + bytes(28))
body += mac(k1, body)
initiation = body + bytes(16)
# An attempt at the code must prove its address first: a cookie reply, then MAC2.
reply, again = cookie_reply(rb, secret_b, initiation, k1, index_a)

hs_seed_b = rb.take(32)
sp_b, msg_b = spake(rb, code)
index_b = rb.u32()
eb = Stream(hs_seed_b).take(32)
k_a, k_b = sp_a.finish(msg_b), sp_b.finish(msg_a)
assert k_a == k_b
psk = b2(b'udpchat/v2/psk', b'\x00', b'\x01' + k_a)
# The PSK is mixed at message 2, so A's handshake (started before the SPAKE2 key was
# known, as the document says) takes it now, before it reads the response.
a.noise_protocol.psks = [psk]
b = conn(False, sb, eb, header)
assert b.read_message(again[7:116]) == msg_a + bytes(28)
response = bytes([0xD2, VERSION, 1]) + struct.pack('>I', index_a) + msg_b + \
    b.write_message(struct.pack('>IQ', index_b, 0xB))
assert a.read_message(response[40:]) == struct.pack('>IQ', index_b, 0xB)
finish = bytes([0xD3, VERSION]) + struct.pack('>I', index_b) + a.write_message(struct.pack('>Q', 0xA))
assert b.read_message(finish[6:]) == struct.pack('>Q', 0xA)
got = {'initiation': initiation, 'cookie_reply': reply, 'initiation_with_mac2': again,
       'response': response, 'finish': finish, **after_handshake(a, b, index_a, index_b)}
check('code', got, want, 'with python-spake2')
