#!/usr/bin/env python3
"""Independent check of keyschedule.json and commit.json (helper REVIEW;
updated by GROUPFIX to the chained key schedule).

Recomputes every vector from docs/PROTOCOL.md ("Rooms") and RFC 9180 with
Python's hmac/hashlib and the `cryptography` package (X25519, Ed25519,
ChaCha20-Poly1305), sharing no code with chat/room/group: HKDF, the key
schedule, sender chains, AD, MAC input and MAC, sync proof, commit signing
input, hash, body hash, HPKE info, Ed25519 signatures of key packages,
commits and the token, and HPKE base-mode Open of every sealed entry
(DHKEM(X25519, HKDF-SHA256) 0x0020, HKDF-SHA256 0x0001, ChaCha20-Poly1305
0x0003). Run from this directory: python3 review_crosscheck.py
"""
import hashlib
import hmac
import json
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

H = bytes.fromhex


def ext(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def exp(prk, info, n=32):
    t, out, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + t, i + 1
    return out[:n]


def lp(x):
    return struct.pack(">I", len(x)) + x


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def mac(k, b):
    return hmac.new(k, b, hashlib.sha256).digest()


checks = []


def check(name, ok):
    checks.append((name, ok))


def expc(prk, label, ctx):
    return exp(prk, label + b"\x00" + ctx)


def schedule(prev_init, commit_secret, ctx):
    joiner = expc(ext(prev_init, commit_secret), b"parley/room/2 joiner", ctx)
    epoch = expc(ext(joiner, bytes(32)), b"parley/room/2 epoch", ctx)
    return joiner, epoch


k = json.load(open("keyschedule.json"))
R = H(k["RoomID"])
joiner, S = schedule(H(k["PrevInitSecret"]), H(k["CommitSecret"]), H(k["Context"]))
check("JoinerSecret", joiner == H(k["JoinerSecret"]))
check("EpochSecret", S == H(k["EpochSecret"]))
check("ConfirmationKey", exp(S, b"parley/room/2 confirm") == H(k["ConfirmationKey"]))
check("ConfirmationTag", mac(exp(S, b"parley/room/2 confirm"), H(k["Context"])) == H(k["ConfirmationTag"]))
check("InitSecret", exp(S, b"parley/room/2 init") == H(k["InitSecret"]))
prk = S
for field, label in [("MembershipKey", b"membership"), ("RendezvousKey", b"rendezvous"), ("SyncKey", b"sync")]:
    check(field, exp(prk, b"parley/room/2 " + label) == H(k[field]))
check("EpochHash", H(k["CommitHash"])[:8] == H(k["EpochHash"]))
for s in k["Senders"]:
    info = b"parley/room/2 sender" + H(s["Author"])
    check("SenderInfo", info == H(s["SenderInfo"]))
    ck = exp(prk, info)
    for c in s["Chain"]:
        check("ChainKey", ck == H(c["ChainKey"]))
        check("MessageKey", mac(ck, b"\x01") == H(c["MessageKey"]))
        ck = mac(ck, b"\x02")
m = k["Message"]
ad = (b"parley/room/2 message\x00" + lp(R) + u64(k["Epoch"]) + lp(H(m["Author"])) + u32(m["Generation"])
      + lp(H(m["MsgID"])) + u64(m["Hlc"]))
check("AD", ad == H(m["AD"]))
check("Ciphertext", ChaCha20Poly1305(H(m["MessageKey"])).decrypt(bytes(12), H(m["Ciphertext"]), ad) == H(m["Plaintext"]))
mi = (b"parley/room/2 membership mac\x00" + lp(R) + u64(k["Epoch"]) + lp(H(k["EpochHash"])) + lp(H(m["Author"]))
      + u32(m["Generation"]) + u64(m["Hlc"]) + lp(H(m["MsgID"])) + lp(H(m["Ciphertext"])))
check("MACInput", mi == H(m["MACInput"]))
check("MAC", mac(exp(prk, b"parley/room/2 membership"), mi) == H(m["MAC"]))
sp = k["SyncProof"]
check("SyncProof", mac(exp(prk, b"parley/room/2 sync"), H(sp["Input"])) == H(sp["Proof"]))

c = json.load(open("commit.json"))
R2 = H(c["RoomID"])
ids = {H(i["PeerID"]): i for i in c["Identities"]}
for i in c["Identities"]:
    check("PeerID", H(i["PeerID"]) == bytes([0, 0x24, 8, 1, 0x12, 0x20]) + H(i["Ed25519Public"]))
    Ed25519PublicKey.from_public_bytes(H(i["Ed25519Public"])).verify(
        H(i["KeyPackageSig"]), b"parley/room/2 key package\x00" + H(i["KeyPackageBody"]))
    sk = X25519PrivateKey.from_private_bytes(H(i["HPKEPrivate"]))
    pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    check("HPKEPublic", pk == H(i["HPKEPublic"]))
    check("KeyPackage has both keys", H(i["HPKEPublic"]) in H(i["KeyPackageBody"]) and H(i["HPKEInitPublic"]) in H(i["KeyPackageBody"]))


def x25519_priv(seed):
    # RFC 9180 DeriveKeyPair is not used: Go's NewPrivateKey takes the 32
    # bytes as the (clamped) scalar, as X25519PrivateKey does.
    return X25519PrivateKey.from_private_bytes(seed)


KEM = b"KEM" + u16(0x20)
SUITE = b"HPKE" + u16(0x20) + u16(1) + u16(3)


def lext(sid, salt, label, ikm):
    return ext(salt, b"HPKE-v1" + sid + label + ikm)


def lexp(sid, prk, label, info, n):
    return exp(prk, u16(n) + b"HPKE-v1" + sid + label + info, n)


issuer = c["Identities"][0]
prev_init = None
for cv in c["Commits"]:
    body, sealed, tag = H(cv["Body"]), H(cv["SealedList"]), H(cv["ConfirmationTag"])
    si = b"parley/room/2 commit\x00" + u32(len(body)) + body + hashlib.sha256(sealed).digest() + tag
    check("SigningInput", si == H(cv["SigningInput"]))
    check("Hash", hashlib.sha256(si).digest() == H(cv["Hash"]))
    ctx = hashlib.sha256(b"parley/room/2 commit body\x00" + body).digest()
    check("Context", ctx == H(cv["Context"]))
    if prev_init is not None:
        check("init chained", H(cv["PrevInitSecret"]) == prev_init)
    joiner, S = schedule(H(cv["PrevInitSecret"]), H(cv["CommitSecret"]), ctx)
    check("JoinerSecret", joiner == H(cv["JoinerSecret"]))
    check("EpochSecret", S == H(cv["EpochSecret"]))
    check("ConfirmationTag", mac(exp(S, b"parley/room/2 confirm"), ctx) == tag)
    check("InitSecret", exp(S, b"parley/room/2 init") == H(cv["InitSecret"]))
    prev_init = H(cv["InitSecret"])
    winfo = b"parley/room/2 welcome" + R2 + u64(cv["Epoch"])
    cinfo = b"parley/room/2 commit secret" + R2 + u64(cv["Epoch"])
    check("WelcomeInfo", winfo == H(cv["WelcomeInfo"]))
    check("CommitSecretInfo", cinfo == H(cv["CommitSecretInfo"]))
    Ed25519PublicKey.from_public_bytes(H(issuer["Ed25519Public"])).verify(H(cv["Signature"]), si)
    check("MembershipKey", exp(S, b"parley/room/2 membership") == H(cv["MembershipKey"]))
    for se in cv["Sealed"]:
        who = ids[H(se["Recipient"])]
        if se["Kind"] == "welcome":
            skey, pub, info, want = x25519_priv(H(who["HPKEInitSeed"])), H(who["HPKEInitPublic"]), winfo, joiner
        else:
            skey, pub, info, want = X25519PrivateKey.from_private_bytes(H(who["HPKEPrivate"])), H(who["HPKEPublic"]), cinfo, H(cv["CommitSecret"])
        enc = H(se["Enc"])
        dh = skey.exchange(X25519PublicKey.from_public_bytes(enc))
        ss = lexp(KEM, lext(KEM, b"", b"eae_prk", dh), b"shared_secret", enc + pub, 32)
        ksc = b"\x00" + lext(SUITE, b"", b"psk_id_hash", b"") + lext(SUITE, b"", b"info_hash", info)
        sec = lext(SUITE, ss, b"secret", b"")
        key, nonce = lexp(SUITE, sec, b"key", ksc, 32), lexp(SUITE, sec, b"base_nonce", ksc, 12)
        check("HPKE open " + se["Kind"], ChaCha20Poly1305(key).decrypt(nonce, H(se["Ciphertext"]), ctx) == want)
jr = c["JoinRequest"]
check("JoinProof", mac(H(jr["JoinSecret"]), H(jr["ProofInput"])) == H(jr["Proof"]))
bob = c["Identities"][1]
check("ConsentInput", H(jr["ConsentInput"]) == b"parley/room/2 join consent\x00" + R2 + hashlib.sha256(H(bob["KeyPackage"])).digest())
Ed25519PublicKey.from_public_bytes(H(bob["Ed25519Public"])).verify(H(jr["Consent"]), H(jr["ConsentInput"]))
check("ProofInput", H(jr["ProofInput"]) == b"parley/room/2 join proof\x00" + lp(H(c["JoinToken"]["Token"])) + lp(H(bob["PeerID"])) + lp(H(bob["KeyPackage"])))
t = c["JoinToken"]
Ed25519PublicKey.from_public_bytes(H(issuer["Ed25519Public"])).verify(
    H(t["Signature"]), b"parley/room/2 join token\x00" + H(t["Body"]))
bad = [n for n, ok in checks if not ok]
print("FAIL: " + ", ".join(bad) if bad else "ok: %d checks and every signature" % len(checks))
raise SystemExit(1 if bad else 0)
