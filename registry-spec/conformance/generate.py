#!/usr/bin/env python3
"""Generate the registry-spec conformance vectors (see README.md in this folder).

Needs Python 3.8+ (standard library only) and the `minisign` command (0.10 or later).
Run from anywhere: `python3 registry-spec/conformance/generate.py`. It rewrites
`vectors.json` and the files under `cases/`; keys under `keys/` are created once and
kept, so a re-run produces the same bytes (Ed25519 signatures are deterministic).
"""

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "keys")
CASES = os.path.join(HERE, "cases")
NOW = "2026-06-01T00:00:00Z"
APP, CHANNEL, VERSION, TARGET = "demo", "prod", "1.0.0", "x86_64-linux"
TRUSTED_COMMENT = "conformance vector"
PASSWORD = "conformance"

vectors = []


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def keypair(name):
    sk, pk = os.path.join(KEYS, name + ".key"), os.path.join(KEYS, name + ".pub")
    if not (os.path.exists(sk) and os.path.exists(pk)):
        run("minisign", "-G", "-f", "-W", "-p", pk, "-s", sk)
    return sk, pk


def rel(path):
    return os.path.relpath(path, HERE)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def sign(path, key, legacy=False):
    args = ["minisign", "-S", "-s", key, "-t", TRUSTED_COMMENT, "-m", path, "-x", path + ".minisig"]
    if legacy:
        args.insert(2, "-l")
    run(*args)
    return path + ".minisig"


def pretty(doc):
    return (json.dumps(doc, indent=2) + "\n").encode()


# ---------------------------------------------------------------- keys (§7)


def scrypt_params(opslimit, memlimit):
    """libsodium's crypto_pwhash_scryptsalsa208sha256 mapping (spec §7)."""
    ops = max(opslimit, 32768)
    r = 8
    if ops < memlimit // 32:
        p, max_n = 1, ops // (r * 4)
    else:
        max_n = memlimit // (r * 128)
    k = 1
    while k < 63 and (1 << k) <= max_n // 2:
        k += 1
    if not ops < memlimit // 32:
        p = min((ops // 4) // (1 << k), 0x3FFFFFFF) // r
    return 1 << k, r, p


def encrypted_secret_key(plain_key_file, out, password, opslimit, memlimit, break_checksum=False):
    """Re-encrypt an unencrypted minisign secret key as spec §7 says, with scrypt
    parameters small enough for tests (minisign's defaults need 1 GiB)."""
    lines = open(plain_key_file).read().splitlines()
    raw = base64.b64decode(lines[1])
    assert raw[0:2] == b"Ed" and raw[2:4] == b"\0\0", "expected an unencrypted key (minisign -W)"
    key_id, sk = raw[54:62], raw[62:126]
    checksum = hashlib.blake2b(b"Ed" + key_id + sk, digest_size=32).digest()
    if break_checksum:
        checksum = bytes([checksum[0] ^ 1]) + checksum[1:]
    salt = hashlib.sha256(b"conformance salt").digest()
    n, r, p = scrypt_params(opslimit, memlimit)
    stream = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=104, maxmem=256 << 20)
    boxed = bytes(a ^ b for a, b in zip(key_id + sk + checksum, stream))
    body = (b"Ed" + b"Sc" + b"B2" + salt + opslimit.to_bytes(8, "little")
            + memlimit.to_bytes(8, "little") + boxed)
    text = "untrusted comment: minisign encrypted secret key\n" + base64.b64encode(body).decode() + "\n"
    write(out, text.encode())


def key_vectors(trusted_sk, trusted_pk):
    for name, ops, mem, broken, verdict in [
        ("secret-key-encrypted-small-n", 1 << 20, 1 << 30, False, "accept"),
        ("secret-key-encrypted-p-from-opslimit", 1 << 19, 1 << 22, False, "accept"),
        ("secret-key-bad-checksum", 1 << 20, 1 << 30, True, "reject"),
    ]:
        out = os.path.join(CASES, name, "secret.key")
        encrypted_secret_key(trusted_sk, out, PASSWORD, ops, mem, broken)
        n, r, p = scrypt_params(ops, mem)
        v = {"name": name, "check": "secret-key", "secret_key": rel(out), "password": PASSWORD,
             "public_key": rel(trusted_pk), "scrypt": {"N": n, "r": r, "p": p},
             "verdict": verdict}
        if verdict == "reject":
            v["class"] = "key"
        vectors.append(v)


# ---------------------------------------------------------------- channel documents


def channel_doc(**over):
    doc = {
        "schema_version": 1, "kind": "channel", "app": APP, "channel": CHANNEL,
        "version": VERSION, "sequence": 7, "issued": "2026-05-01T00:00:00Z",
        "expires": "2026-07-01T00:00:00Z",
    }
    for k, v in over.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return doc


def add_doc(check, name, data, key, verdict, cls=None, sig_edit=None, legacy=False, **extra):
    path = os.path.join(CASES, name, "channel.json" if check == "channel" else "release.json")
    write(path, data)
    sig = sign(path, key, legacy)
    if sig_edit:
        text = open(sig, "rb").read()
        write(sig, sig_edit(text))
    v = {"name": name, "check": check, "document": rel(path), "signature": rel(sig), "verdict": verdict}
    if cls:
        v["class"] = cls
    v.update(extra)
    vectors.append(v)


def channel_vectors(sk, other_sk):
    base = dict(app=APP, channel=CHANNEL, min_sequence=5, now=NOW)

    def ch(name, doc_or_bytes, verdict="accept", cls=None, key=sk, expect=None, **kw):
        data = doc_or_bytes if isinstance(doc_or_bytes, bytes) else pretty(doc_or_bytes)
        args = dict(base)
        args.update({k: v for k, v in kw.items() if k in base})
        rest = {k: v for k, v in kw.items() if k not in base}
        if verdict == "accept" and expect is None:
            doc = json.loads(data.decode("utf-8-sig"))
            expect = {"version": doc["version"], "sequence": doc["sequence"]}
        add_doc("channel", name, data, key, verdict, cls, expect=expect, **args, **rest)

    ok = channel_doc()
    ch("channel-ok", ok)
    ch("channel-ok-compact-no-final-newline", json.dumps(ok, separators=(",", ":")).encode())
    ch("channel-ok-unknown-top-level-member", channel_doc(mirror_hint={"region": "eu"}))
    ch("channel-ok-unknown-member-in-yanked-entry",
       channel_doc(yanked=[{"version": "0.9.0", "reason": "r", "ticket": "INC-1"}]))
    ch("channel-ok-sequence-equal-to-accepted", channel_doc(sequence=5))
    ch("channel-ok-issued-in-the-future", channel_doc(issued="2026-06-15T00:00:00Z"))
    ch("channel-ok-leap-second", channel_doc(expires="2026-06-30T23:59:60Z"))
    ch("channel-ok-fraction-nine-digits", channel_doc(expires="2026-07-01T00:00:00.123456789Z"))
    ch("channel-ok-fraction-expiry-just-after-now", channel_doc(expires="2026-06-01T00:00:00.5Z"))
    ch("channel-ok-empty-rollout", channel_doc(rollout={}))
    ch("channel-ok-empty-waves", channel_doc(rollout={"waves": []}))
    ch("channel-ok-duplicate-yanked-entries",
       channel_doc(yanked=[{"version": "0.9.0", "reason": "a"}, {"version": "0.9.0", "reason": "b"}]))
    ch("channel-ok-escaped-strings", channel_doc(notes="caf\u00e9 \u2603 \"quoted\" \\ \n"))
    ch("channel-ok-label-version", channel_doc(version="abc1234"))
    ch("channel-ok-crlf-signature", ok,
       sig_edit=lambda t: t.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    ch("channel-ok-signature-without-final-newline", ok, sig_edit=lambda t: t.rstrip(b"\n"))

    # §9 step 2: signatures.
    ch("channel-signature-untrusted-key", ok, "reject", "signature", key=other_sk)
    tampered = bytearray(pretty(ok))
    data = bytes(tampered)
    path = os.path.join(CASES, "channel-signature-tampered", "channel.json")
    write(path, data)
    sig = sign(path, sk)
    write(path, data.replace(b'"sequence": 7', b'"sequence": 9'))
    vectors.append({"name": "channel-signature-tampered", "check": "channel", "document": rel(path),
                    "signature": rel(sig), "verdict": "reject", "class": "signature", **base})
    ch("channel-signature-legacy-mode", ok, "reject", "signature", legacy=True)
    ch("channel-signature-not-base64", ok, "reject", "signature",
       sig_edit=lambda t: b"\n".join(l if i != 1 else b"!!!" + l[3:] for i, l in enumerate(t.split(b"\n"))))
    ch("channel-signature-trusted-comment-changed", ok, "reject", "signature",
       sig_edit=lambda t: t.replace(TRUSTED_COMMENT.encode(), b"conformance vectoR"))

    # §4 / §9 step 3: malformed.
    m = lambda name, data: ch(name, data, "reject", "malformed")
    m("channel-malformed-not-json", b"{ this is not json }\n")
    m("channel-malformed-byte-order-mark", b"\xef\xbb\xbf" + pretty(ok))
    m("channel-malformed-not-utf8", pretty(channel_doc(notes="X")).replace(b'"X"', b'"\xff"'))
    m("channel-malformed-duplicate-member", pretty(ok).replace(b"{\n", b'{\n  "version": "0.9.0",\n', 1))
    m("channel-malformed-duplicate-member-nested",
      pretty(channel_doc(rollout={"percent": 10})).replace(b'"percent": 10', b'"percent": 10, "percent": 90'))
    m("channel-malformed-duplicate-member-escaped",
      pretty(ok).replace(b"{\n", b'{\n  "\\u0076ersion": "0.9.0",\n', 1))
    m("channel-malformed-integer-with-fraction", pretty(ok).replace(b'"sequence": 7', b'"sequence": 7.0'))
    m("channel-malformed-integer-with-exponent", pretty(ok).replace(b'"sequence": 7', b'"sequence": 7e0'))
    m("channel-malformed-negative-sequence", pretty(channel_doc(sequence=-7)))
    m("channel-malformed-sequence-zero", pretty(channel_doc(sequence=0)))
    m("channel-malformed-sequence-too-large", pretty(channel_doc(sequence=2 ** 53)))
    m("channel-malformed-sequence-as-string", pretty(channel_doc(sequence="7")))
    m("channel-malformed-missing-expires", pretty(channel_doc(expires=None)))
    m("channel-malformed-null-notes", pretty(channel_doc(notes=None)).replace(b'"expires"', b'"notes": null,\n  "expires"'))
    m("channel-malformed-kind-release", pretty(channel_doc(kind="release")))
    m("channel-malformed-v-prefixed-version", pretty(channel_doc(version="v1.0.0")))
    m("channel-malformed-v-prefixed-yanked", pretty(channel_doc(yanked=[{"version": "v0.9.0", "reason": "r"}])))
    m("channel-malformed-version-path", pretty(channel_doc(version="../1.0.0")))
    m("channel-malformed-version-reserved", pretty(channel_doc(version="current")))
    m("channel-malformed-app-name", pretty(channel_doc(app="-demo")))
    m("channel-malformed-time-offset", pretty(channel_doc(expires="2026-07-01T00:00:00+00:00")))
    m("channel-malformed-time-lowercase-z", pretty(channel_doc(expires="2026-07-01T00:00:00z")))
    m("channel-malformed-time-lowercase-t", pretty(channel_doc(expires="2026-07-01t00:00:00Z")))
    m("channel-malformed-time-space", pretty(channel_doc(expires="2026-07-01 00:00:00Z")))
    m("channel-malformed-time-ten-fraction-digits", pretty(channel_doc(expires="2026-07-01T00:00:00.1234567891Z")))
    m("channel-malformed-time-empty-fraction", pretty(channel_doc(expires="2026-07-01T00:00:00.Z")))
    m("channel-malformed-time-no-such-day", pretty(channel_doc(expires="2026-02-30T00:00:00Z")))
    m("channel-malformed-expires-not-after-issued", pretty(channel_doc(expires="2026-05-01T00:00:00Z")))
    m("channel-malformed-own-version-yanked", pretty(channel_doc(yanked=[{"version": VERSION, "reason": "r"}])))
    m("channel-malformed-yanked-without-reason", pretty(channel_doc(yanked=[{"version": "0.9.0"}])))
    m("channel-malformed-rollout-percent-over-100", pretty(channel_doc(rollout={"percent": 101})))
    m("channel-malformed-waves-out-of-order", pretty(channel_doc(rollout={"waves": [
        {"start": "2026-05-02T00:00:00Z", "percent": 10}, {"start": "2026-05-01T00:00:00Z", "percent": 50}]})))
    m("channel-malformed-waves-same-start", pretty(channel_doc(rollout={"waves": [
        {"start": "2026-05-02T00:00:00Z", "percent": 10}, {"start": "2026-05-02T00:00:00Z", "percent": 50}]})))
    m("channel-malformed-unknown-rollout-member", pretty(channel_doc(rollout={"percent": 10, "regions": ["eu"]})))
    m("channel-malformed-unknown-wave-member",
      pretty(channel_doc(rollout={"waves": [{"start": "2026-05-02T00:00:00Z", "percent": 10, "region": "eu"}]})))
    m("channel-malformed-halted-at-not-a-time",
      pretty(channel_doc(rollout={"percent": 10, "halted": {"at": "when it broke", "reason": "r"}})))
    m("channel-malformed-not-an-object", b"[1, 2, 3]\n")
    m("channel-malformed-null-rollout-percent", pretty(channel_doc(rollout={"percent": None})).replace(b"{}", b'{"percent": null}'))

    ch("channel-unsupported-schema", channel_doc(schema_version=2), "reject", "unsupported-schema")
    ch("channel-mix-and-match-app", channel_doc(app="other"), "reject", "mix-and-match")
    ch("channel-mix-and-match-channel", channel_doc(channel="dev"), "reject", "mix-and-match")
    ch("channel-rollback-lower-sequence", channel_doc(sequence=4), "reject", "rollback")
    ch("channel-expired", channel_doc(expires="2026-05-31T23:59:59Z"), "reject", "expired")
    ch("channel-expired-at-now", channel_doc(expires=NOW), "reject", "expired")
    # Limits (§12): the publisher maximum is accepted, one byte more is not. Padded with
    # whitespace (JSON allows it), which git stores in a few hundred bytes.
    limit = 1 << 20
    body = pretty(ok)
    ch("channel-ok-exactly-the-document-limit", body + b" " * (limit - len(body)))
    ch("channel-too-large", body + b" " * (limit + 1 - len(body)), "reject", "too-large")
    # The signature limit (4 KiB): lines after the fourth are ignored (§7), so padding
    # with empty lines keeps the signature valid and only its size changes.
    pad_to = lambda n: (lambda t: t + b"\n" * (n - len(t)))
    ch("channel-ok-signature-exactly-the-limit", ok, sig_edit=pad_to(4096))
    ch("channel-signature-too-large", ok, "reject", "too-large", sig_edit=pad_to(4097))


# ---------------------------------------------------------------- release documents


def artifact(url=None, sha="a" * 64, size=1234, fmt="tar.gz", target=TARGET, version=VERSION):
    return {"url": url or f"{APP}-{version}-{target}.tar.gz", "sha256": sha, "size": size, "format": fmt}


def release_doc(**over):
    doc = {"schema_version": 1, "kind": "release", "app": APP, "version": VERSION,
           "issued": "2026-05-01T00:00:00Z",
           "artifacts": {TARGET: artifact(), "aarch64-linux": artifact(target="aarch64-linux")}}
    for k, v in over.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return doc


def release_vectors(sk, other_sk):
    base = dict(app=APP, version=VERSION, target=TARGET)

    def rl(name, doc, verdict="accept", cls=None, key=sk, location=None, **kw):
        data = doc if isinstance(doc, bytes) else pretty(doc)
        args = dict(base)
        args.update(kw)
        extra = {}
        if verdict == "accept":
            extra["expect"] = {"location": location or {"key": f"{APP}/releases/{VERSION}/{APP}-{VERSION}-{TARGET}.tar.gz"},
                               "sha256": "a" * 64, "size": 1234}
        add_doc("release", name, data, key, verdict, cls, **args, **extra)

    def with_other(entry):
        return release_doc(artifacts={TARGET: artifact(), "aarch64-linux": entry})

    rl("release-ok", release_doc())
    big = pretty(release_doc())
    rl("release-too-large", big + b" " * ((1 << 20) + 1 - len(big)), "reject", "too-large")
    rl("release-ok-notes-and-unknown-members",
       release_doc(notes="n", build={"ci": 1}, artifacts={TARGET: dict(artifact(), signed_by="ci")}))
    rl("release-ok-subdirectory-url", release_doc(artifacts={TARGET: artifact(url="bin/demo.tar.gz")}),
       location={"key": f"{APP}/releases/{VERSION}/bin/demo.tar.gz"})
    rl("release-ok-absolute-https-url",
       release_doc(artifacts={TARGET: artifact(url="https://cdn.example.com/demo/x.tar.gz")}),
       location={"url": "https://cdn.example.com/demo/x.tar.gz"})
    rl("release-ok-unknown-format-for-another-target", with_other(artifact(fmt="tar.zst", target="aarch64-linux")))
    rl("release-ok-label-version", release_doc(version="abc1234"), version="abc1234",
       location={"key": f"{APP}/releases/abc1234/{APP}-{VERSION}-{TARGET}.tar.gz"})
    rl("release-ok-build-metadata-version", release_doc(version="1.0.0+build.5"), version="1.0.0+build.5",
       location={"key": f"{APP}/releases/1.0.0+build.5/{APP}-{VERSION}-{TARGET}.tar.gz"})

    m = lambda name, doc: rl(name, doc, "reject", "malformed")
    m("release-malformed-file-url-for-another-target", with_other(artifact(url="file:///etc/passwd")))
    m("release-malformed-s3-url-for-another-target", with_other(artifact(url="s3://bucket/x.tar.gz")))
    m("release-malformed-dotdot-url-for-another-target", with_other(artifact(url="../1.0.1/x.tar.gz")))
    m("release-malformed-absolute-path-url", release_doc(artifacts={TARGET: artifact(url="/etc/passwd")}))
    m("release-malformed-percent-url", release_doc(artifacts={TARGET: artifact(url="a%2e%2e/x.tar.gz")}))
    m("release-malformed-query-url", release_doc(artifacts={TARGET: artifact(url="x.tar.gz?v=1")}))
    m("release-malformed-empty-segment-url", release_doc(artifacts={TARGET: artifact(url="a//x.tar.gz")}))
    m("release-malformed-https-without-host", release_doc(artifacts={TARGET: artifact(url="https:///x.tar.gz")}))
    m("release-malformed-uppercase-sha256-for-another-target", with_other(artifact(sha="A" * 64)))
    m("release-malformed-short-sha256", release_doc(artifacts={TARGET: artifact(sha="a" * 63)}))
    m("release-malformed-size-zero-for-another-target", with_other(artifact(size=0)))
    m("release-malformed-missing-format", release_doc(artifacts={TARGET: {k: v for k, v in artifact().items() if k != "format"}}))
    m("release-malformed-bad-target-name", release_doc(artifacts={TARGET: artifact(), "../x": artifact()}))
    m("release-malformed-no-artifacts", release_doc(artifacts={}))
    m("release-malformed-kind-channel", release_doc(kind="channel"))
    m("release-malformed-v-prefixed-version", release_doc(version="v1.0.0"))
    m("release-malformed-duplicate-target",
      pretty(release_doc(artifacts={TARGET: artifact()})).replace(
          b'"artifacts": {', b'"artifacts": {\n    "' + TARGET.encode() + b'": ' + json.dumps(artifact(sha="b" * 64)).encode() + b",", 1))
    rl("release-mix-and-match-version", release_doc(version="1.0.1"), "reject", "mix-and-match")
    rl("release-mix-and-match-app", release_doc(app="other"), "reject", "mix-and-match")
    rl("release-unsupported-schema", release_doc(schema_version=2), "reject", "unsupported-schema")
    rl("release-signature-untrusted-key", release_doc(), "reject", "signature", key=other_sk)
    rl("release-not-found-target", release_doc(artifacts={"aarch64-linux": artifact(target="aarch64-linux")}),
       "reject", "not-found")
    rl("release-unsupported-format-own-target", release_doc(artifacts={TARGET: artifact(fmt="tar.zst")}),
       "reject", "unsupported-format")


# ---------------------------------------------------------------- artifacts (§6.1, §9 step 8)


class Tar:
    def __init__(self, fmt=tarfile.PAX_FORMAT, pax_global=None):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=fmt, pax_headers=pax_global or {})

    def _info(self, name, typ, mode=0o644, **kw):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = typ, mode, 1767225600, 1000, 1000
        ti.uname = ti.gname = "build"
        for k, v in kw.items():
            setattr(ti, k, v)
        return ti

    def file(self, name, data, mode=0o644):
        ti = self._info(name, tarfile.REGTYPE, mode, size=len(data))
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))
        return self

    def symlink(self, name, target):
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, 0o777, linkname=target))
        return self

    def hardlink(self, name, target):
        self.tar.addfile(self._info(name, tarfile.LNKTYPE, 0o644, linkname=target))
        return self

    def special(self, name, typ):
        self.tar.addfile(self._info(name, typ, 0o644))
        return self

    def gz(self, members=1):
        self.tar.close()
        raw = self.buf.getvalue()
        out = io.BytesIO()
        cut = [0] + [len(raw) * i // members for i in range(1, members)] + [len(raw)]
        for a, b in zip(cut, cut[1:]):
            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as g:
                g.write(raw[a:b])
        return out.getvalue()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def f(path, data, mode="644"):
    return {"path": path, "type": "file", "sha256": sha(data), "mode": mode}


def d(path):
    return {"path": path, "type": "dir"}


def s(path, target):
    return {"path": path, "type": "symlink", "target": target}


def artifact_vectors():
    def art(name, blob, verdict="accept", cls=None, tree=None, sha256=None, size=None, limit=None):
        path = os.path.join(CASES, name, "artifact.tar.gz")
        write(path, blob)
        v = {"name": name, "check": "artifact", "artifact": rel(path), "version": VERSION,
             "sha256": sha256 or sha(blob), "size": len(blob) if size is None else size, "verdict": verdict}
        if cls:
            v["class"] = cls
        if limit is not None:
            v["max_artifact_bytes"] = limit
        if tree is not None:
            v["expect"] = {"tree": sorted(tree, key=lambda e: e["path"])}
        vectors.append(v)

    app, ver = b"#!/bin/sh\necho hello\n", b"1.0.0\n"
    basic = Tar().file("VERSION", ver).dir("bin").file("bin/app", app, 0o755)
    art("artifact-ok", basic.gz(), tree=[f("VERSION", ver), d("bin"), f("bin/app", app, "755")])
    art("artifact-ok-dot-slash-names",
        Tar().dir("./").file("./VERSION", ver).dir("./bin/").file("./bin/app", app, 0o755).gz(),
        tree=[f("VERSION", ver), d("bin"), f("bin/app", app, "755")])
    art("artifact-ok-root-is-not-stripped", Tar().dir("demo").file("demo/VERSION", ver).gz(),
        tree=[d("demo"), f("demo/VERSION", ver)])
    art("artifact-ok-implied-directories", Tar().file("a/b/c.txt", b"c").gz(),
        tree=[d("a"), d("a/b"), f("a/b/c.txt", b"c")])
    art("artifact-ok-directory-entry-repeated", Tar().file("a/c.txt", b"c").dir("a").dir("a/").gz(),
        tree=[d("a"), f("a/c.txt", b"c")])
    art("artifact-ok-no-version-file", Tar().file("app", app, 0o755).gz(), tree=[f("app", app, "755")])
    art("artifact-ok-version-file-names-another-version", Tar().file("VERSION", b"9.9.9\n").gz(),
        tree=[f("VERSION", b"9.9.9\n")])
    art("artifact-ok-links", Tar().dir("bin").file("bin/app", app, 0o755).symlink("run", "bin/app")
        .symlink("bin/self", "../bin/app").hardlink("app-copy", "bin/app").gz(),
        tree=[d("bin"), f("bin/app", app, "755"), s("run", "bin/app"), s("bin/self", "../bin/app"),
              f("app-copy", app, "755")])
    art("artifact-ok-special-bits-cleared", Tar().file("suid", app, 0o6777).file("shared", b"x", 0o666).gz(),
        tree=[f("suid", app, "755"), f("shared", b"x", "644")])
    art("artifact-ok-pax-global-header", Tar(pax_global={"comment": "git archive"}).file("a", b"a").gz(),
        tree=[f("a", b"a")])
    long = "d" * 60 + "/" + "e" * 60 + "/" + "f" * 60 + ".txt"
    art("artifact-ok-gnu-long-name", Tar(fmt=tarfile.GNU_FORMAT).file(long, b"long").gz(),
        tree=[d("d" * 60), d("d" * 60 + "/" + "e" * 60), f(long, b"long")])
    art("artifact-ok-pax-long-name", Tar().file(long, b"long").gz(),
        tree=[d("d" * 60), d("d" * 60 + "/" + "e" * 60), f(long, b"long")])
    art("artifact-ok-ustar", Tar(fmt=tarfile.USTAR_FORMAT).file("a", b"a").gz(), tree=[f("a", b"a")])
    art("artifact-ok-multi-member-gzip", Tar().file("a", b"a" * 5000).file("b", b"b" * 5000).gz(members=3),
        tree=[f("a", b"a" * 5000), f("b", b"b" * 5000)])

    good = basic.gz() if False else Tar().file("VERSION", ver).gz()
    art("artifact-mismatch-sha256", good, "reject", "mismatch", sha256="0" * 64)
    art("artifact-ok-exactly-the-artifact-limit", good, tree=[f("VERSION", ver)], limit=len(good))
    art("artifact-too-large-for-the-artifact-limit", good, "reject", "too-large", limit=len(good) - 1)
    art("artifact-mismatch-size", good, "reject", "mismatch", size=len(good) + 1)

    h = lambda name, tar: art(name, tar.gz(), "reject", "hostile-archive")
    h("artifact-hostile-dotdot", Tar().file("../evil", b"x"))
    h("artifact-hostile-dotdot-inside", Tar().file("a/../../evil", b"x"))
    h("artifact-hostile-absolute", Tar().file("/etc/evil", b"x"))
    h("artifact-hostile-symlink-absolute", Tar().symlink("l", "/etc/passwd"))
    h("artifact-hostile-symlink-escapes", Tar().dir("a").symlink("a/l", "../../etc"))
    h("artifact-hostile-symlink-dotdot-after-name", Tar().dir("a").symlink("l", "a/../a"))
    h("artifact-hostile-write-through-symlink", Tar().dir("bin").symlink("l", "bin").file("l/x", b"x"))
    h("artifact-hostile-hardlink-outside", Tar().hardlink("l", "../../etc/passwd"))
    h("artifact-hostile-hardlink-to-missing", Tar().hardlink("l", "nothing"))
    h("artifact-hostile-char-device", Tar().special("dev", tarfile.CHRTYPE))
    h("artifact-hostile-block-device", Tar().special("dev", tarfile.BLKTYPE))
    h("artifact-hostile-fifo", Tar().special("fifo", tarfile.FIFOTYPE))
    h("artifact-hostile-duplicate-entry", Tar().file("a", b"1").file("a", b"2"))
    h("artifact-hostile-file-over-directory", Tar().dir("a").file("a", b"x"))


# ---------------------------------------------------------------- decisions and buckets (§8.5, §8.7, §10)


def bucket(machine, app, version):
    digest = hashlib.sha256(f"{machine}\n{app}\n{version}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10000


def decide_vectors():
    machine = "conformance-machine"
    base = {"app": APP, "machine_id": machine, "now": NOW, "current": "1.2.0", "channel_version": "1.3.0",
            "sequence": 8, "last_sequence": 7, "rollout": None, "yanked": [], "installed": ["1.2.0"],
            "pinned": None, "blocked": []}
    b = bucket(machine, APP, "1.3.0")
    inside, outside = (b // 100) + 1, b // 100  # smallest share that admits, largest that does not
    waves = lambda *ws: {"waves": [{"start": t, "percent": p} for t, p in ws]}

    def dc(name, decision, target=None, local=False, **over):
        inp = dict(base)
        inp.update(over)
        v = {"name": name, "check": "decide", "inputs": inp,
             "expect": {"decision": decision, "target": target}}
        if local:
            v["local_state"] = True
        vectors.append(v)

    dc("decide-update-no-rollout", "update", "1.3.0")
    dc("decide-up-to-date", "up-to-date", current="1.3.0", installed=["1.3.0"])
    dc("decide-install-on-a-fresh-machine", "install", "1.3.0", current=None, installed=[])
    dc("decide-install-on-a-fresh-machine-ignores-rollout", "install", "1.3.0", current=None, installed=[],
       rollout={"percent": 0})
    dc("decide-update-admitted-by-percent", "update", "1.3.0", rollout={"percent": inside})
    dc("decide-wait-outside-percent", "wait-for-rollout", rollout={"percent": outside})
    dc("decide-wait-percent-zero", "wait-for-rollout", rollout={"percent": 0})
    dc("decide-update-empty-rollout-is-everyone", "update", "1.3.0", rollout={})
    dc("decide-update-empty-waves-is-everyone", "update", "1.3.0", rollout={"waves": []})
    dc("decide-update-empty-waves-with-percent", "update", "1.3.0", rollout={"waves": [], "percent": inside})
    dc("decide-wait-before-first-wave", "wait-for-rollout",
       rollout=waves(("2026-06-02T00:00:00Z", 100)))
    dc("decide-update-wave-started", "update", "1.3.0",
       rollout=waves(("2026-05-01T00:00:00Z", outside), ("2026-05-31T00:00:00Z", inside),
                     ("2026-06-02T00:00:00Z", 100)))
    dc("decide-wait-last-started-wave-not-largest", "wait-for-rollout",
       rollout=waves(("2026-05-01T00:00:00Z", 100), ("2026-05-31T00:00:00Z", outside)))
    dc("decide-update-percent-ignored-with-waves", "update", "1.3.0",
       rollout=dict(waves(("2026-05-01T00:00:00Z", 100)), percent=0))
    dc("decide-wait-halted-before-widening", "wait-for-rollout",
       rollout=dict(waves(("2026-05-01T00:00:00Z", outside), ("2026-05-20T00:00:00Z", 100)),
                    halted={"at": "2026-05-10T00:00:00Z", "reason": "r"}))
    dc("decide-update-halted-inside-share", "update", "1.3.0",
       rollout=dict(waves(("2026-05-01T00:00:00Z", inside), ("2026-05-20T00:00:00Z", 100)),
                    halted={"at": "2026-05-10T00:00:00Z", "reason": "r"}))
    dc("decide-leave-yanked-ignores-rollout", "leave-yanked", "1.3.0", yanked=["1.2.0"],
       rollout={"percent": 0})
    dc("decide-channel-yanked", "channel-yanked", yanked=["1.3.0"])
    dc("decide-channel-yanked-on-a-fresh-machine", "channel-yanked", current=None, installed=[],
       yanked=["1.3.0"])
    dc("decide-yank-is-exact-string-not-precedence", "update", "1.3.0", yanked=["1.3.0+other"])
    dc("decide-follow-channel-back", "follow-channel-back", "1.1.0", channel_version="1.1.0",
       installed=["1.1.0", "1.2.0"], rollout={"percent": 0})
    dc("decide-ahead-of-channel", "ahead-of-channel", channel_version="1.1.0", sequence=7, last_sequence=7)
    dc("decide-label-never-ran-is-newer", "update", "def5678", current="abc1234",
       channel_version="def5678", installed=["abc1234"])
    dc("decide-label-ran-before-is-back", "follow-channel-back", "abc1234", current="def5678",
       channel_version="abc1234", installed=["abc1234", "def5678"])
    dc("decide-label-ran-before-same-sequence", "ahead-of-channel", current="def5678",
       channel_version="abc1234", installed=["abc1234", "def5678"], sequence=7, last_sequence=7)
    # updraft's local state (pins, blocks): not part of the registry format.
    dc("decide-pinned", "pinned", local=True, pinned="1.2.0")
    dc("decide-switch-to-pin", "switch-to-pin", "1.0.0", local=True, pinned="1.0.0",
       installed=["1.0.0", "1.2.0"], rollout={"percent": 0})
    dc("decide-pin-unavailable-yanked", "pin-unavailable", local=True, pinned="1.0.0", yanked=["1.0.0"])
    dc("decide-pin-unavailable-blocked", "pin-unavailable", local=True, pinned="1.0.0",
       blocked=[{"version": "1.0.0", "hold": False}])
    dc("decide-blocked", "blocked", local=True, blocked=[{"version": "1.3.0", "hold": False}])
    dc("decide-held-back", "held-back", local=True, blocked=[{"version": "1.3.0", "hold": True}])

    for m_, a_, v_ in [("test-machine", "demo", "1.0.0"), ("test-machine", "demo", "1.1.0"),
                       ("test-machine", "other", "1.0.0"), (machine, APP, "1.3.0"),
                       ("0123456789abcdef0123456789abcdef", "demo", "abc1234"),
                       ("test-machine", "demo", "1.0.0+build.5")]:
        vectors.append({"name": f"bucket-{m_[:12]}-{a_}-{v_}", "check": "bucket", "machine_id": m_, "app": a_,
                        "version": v_, "expect": {"bucket": bucket(m_, a_, v_)}})


def main():
    shutil.rmtree(CASES, ignore_errors=True)
    os.makedirs(KEYS, exist_ok=True)
    trusted_sk, trusted_pk = keypair("trusted")
    other_sk, other_pk = keypair("untrusted")
    key_vectors(trusted_sk, trusted_pk)
    channel_vectors(trusted_sk, other_sk)
    release_vectors(trusted_sk, other_sk)
    artifact_vectors()
    decide_vectors()
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "vector names must be unique"
    out = {"format": "updraft-registry-conformance", "spec_revision": "1.1",
           "trusted_keys": [rel(trusted_pk)], "vectors": vectors}
    with open(os.path.join(HERE, "vectors.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print(f"{len(vectors)} vectors written to {rel(os.path.join(HERE, 'vectors.json'))}", file=sys.stderr)


if __name__ == "__main__":
    main()
