#!/usr/bin/env python3
"""grove-ffi from Python: the generated binding over a real grove-ds.

Needs GROVE_FFI_DIR (the generated grove_ffi.py beside libgrove_ffi.so) and
GROVE_DS_BIN (the grove-ds binary); bindings/tests/run-python sets both.
Plain unittest, no packages. The last line says how many tests passed and
failed; the exit status is 0 only if none failed.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.environ["GROVE_FFI_DIR"])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grove_ffi as g  # noqa: E402
from dsproc import Ds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Collector:
    """An EventListener: keeps every event it is given."""

    def __init__(self):
        self.events = []

    def on_event(self, event):
        self.events.append(event)


class BindingTest(unittest.IsolatedAsyncioTestCase):
    ds = None

    @classmethod
    def setUpClass(cls):
        cls.ds = Ds(tls=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.ds.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="grove-ffi-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def home(self, name):
        return os.path.join(self.tmp, name)

    def options(self, user, ds=None):
        ds = ds or self.ds
        return g.ClientOptions(server=ds.url, user=user, pinned_cert_sha256=ds.fingerprint)

    async def user_in(self, home, name):
        """A client of user `name` in the home `home`."""
        return await g.create_client(self.home(home), self.options(name))

    async def user(self, name, ds=None, store_key=None):
        options = self.options(name, ds)
        options.store_key = store_key
        return await g.create_client(self.home(name), options)

    def assertFails(self, code, err):
        self.assertIsInstance(err, g.GroveError.Failed)
        self.assertEqual(err.code, code, f"{err!r}")
        self.assertTrue(err.message, "an error says what is wrong")

    async def test_group_messages_resources_and_removal(self):
        alice = await self.user("alice")
        bob = await self.user("bob")
        events = Collector()
        bob.set_listener(events)

        group = await alice.create_group("ops")
        added = await alice.add_members(group, ["bob"])
        self.assertTrue(added.committed)
        report = await bob.sync()
        self.assertEqual(report.joined, [group])
        self.assertIn(g.Event.JOINED(group=group), events.events)
        self.assertEqual(sorted(m.user for m in bob.members(group)), ["alice", "bob"])

        await alice.send(group, "hello bob")
        await bob.sync()
        await bob.send(group, "hello alice")
        await alice.sync()
        self.assertEqual([(m.sender, m.text) for m in bob.messages(group)],
                         [("alice", "hello bob"), ("bob", "hello alice")])
        self.assertEqual([(m.sender, m.text, m.own) for m in alice.messages(group)],
                         [("alice", "hello bob", True), ("bob", "hello alice", False)])
        self.assertTrue(any(isinstance(e, g.Event.MESSAGES) for e in events.events))

        data = os.urandom(100_000)
        put = await alice.put_resource(group, "scan.pdf", data)
        self.assertEqual((put.name, put.version, put.size), ("scan.pdf", 1, len(data)))
        await bob.sync()
        self.assertEqual(await bob.get_resource(group, "scan.pdf", None), data)
        self.assertEqual([r.name for r in bob.resources(group)], ["scan.pdf"])
        out = os.path.join(self.tmp, "scan.out")
        await bob.get_resource_to_file(group, "scan.pdf", 1, out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)

        removed = await alice.remove_members(group, ["bob"])
        self.assertTrue(removed.committed)
        await alice.send(group, "after bob left")
        await alice.put_resource(group, "scan.pdf", b"version two")
        report = await bob.sync()
        self.assertEqual(report.removed, [group])
        self.assertIn(g.Event.REMOVED(group=group), events.events)
        texts = [m.text for m in bob.messages(group)]
        self.assertNotIn("after bob left", texts)
        self.assertEqual(texts, ["hello bob", "hello alice"], "bob's history stays readable")
        with self.assertRaises(g.GroveError.Failed) as cm:
            await bob.send(group, "still here?")
        self.assertFails("group_left", cm.exception)
        with self.assertRaises(g.GroveError.Failed) as cm:
            await bob.get_resource(group, "scan.pdf", 2)
        self.assertIn(cm.exception.code, ("group_left", "unknown_resource"), repr(cm.exception))

    async def test_errors_arrive_as_exceptions_with_codes(self):
        alice = await self.user("carol")
        with self.assertRaises(g.GroveError.Failed) as cm:
            await alice.send("no-such-group", "x")
        self.assertFails("unknown_group", cm.exception)
        with self.assertRaises(g.GroveError.Failed) as cm:
            alice.messages("no-such-group")
        self.assertFails("unknown_group", cm.exception)
        with self.assertRaises(g.GroveError.Failed) as cm:
            g.open_client(self.home("nobody"), None)
        self.assertFails("not_initialized", cm.exception)
        with self.assertRaises(g.GroveError.Failed) as cm:
            await alice.add_members(await alice.create_group("x"), ["no-such-user"])
        self.assertFails("server", cm.exception)
        self.assertEqual(cm.exception.server_code, "unknown_user")
        self.assertFalse(cm.exception.retryable)
        both = g.ClientOptions(server=self.ds.url, user="dave", pinned_cert_sha256=self.ds.fingerprint,
                               ca_pem="-----BEGIN CERTIFICATE-----")
        with self.assertRaises(g.GroveError.Failed) as cm:
            await g.create_client(self.home("dave"), both)
        self.assertFails("invalid_argument", cm.exception)

    async def test_pinned_certificate_refuses_another_server(self):
        wrong = g.ClientOptions(server=self.ds.url, user="erin", pinned_cert_sha256="00" * 32)
        with self.assertRaises(g.GroveError.Failed) as cm:
            await g.create_client(self.home("erin"), wrong)
        self.assertIn(cm.exception.code, ("tls", "network"), repr(cm.exception))
        self.assertIn("certificate", cm.exception.message.lower())
        # System roots by default: the dev certificate is self-signed, so refused.
        default = g.ClientOptions(server=self.ds.url, user="erin")
        with self.assertRaises(g.GroveError.Failed):
            await g.create_client(self.home("erin2"), default)

    async def test_server_down_is_a_retryable_error_and_nothing_is_lost(self):
        ds = Ds(tls=True).start()
        try:
            alice = await self.user("frank", ds)
            bob = await self.user("grace", ds)
            group = await alice.create_group("down")
            await alice.add_members(group, ["grace"])
            await bob.sync()
            ds.stop()
            with self.assertRaises(g.GroveError.Failed) as cm:
                await alice.send(group, "while the server is down")
            self.assertFails("network", cm.exception)
            self.assertTrue(cm.exception.retryable)
            with self.assertRaises(g.GroveError.Failed) as cm:
                await bob.sync()
            self.assertTrue(cm.exception.retryable, repr(cm.exception))
            ds.start()
            await alice.sync()  # re-posts what the DS never acknowledged
            await alice.send(group, "after the restart")
            await bob.sync()
            self.assertEqual([m.text for m in bob.messages(group)], ["while the server is down", "after the restart"])
        finally:
            ds.stop()

    async def test_a_server_that_never_answers_times_out_as_retryable(self):
        ds = Ds(tls=True).start()
        hole = None
        try:
            alice = await self.user("uma-timeout", ds)
            bob = await self.user("victor-waits", ds)
            group = await alice.create_group("slow")
            await alice.add_members(group, ["victor-waits"])
            await bob.sync()
            ds.stop()
            # Something takes the DS's port, accepts connections and never answers.
            hole = socket.socket()
            hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            hole.bind(("127.0.0.1", ds.port))
            hole.listen(16)
            alice.set_request_timeout(1500)
            started = time.monotonic()
            with self.assertRaises(g.GroveError.Failed) as cm:
                await alice.send(group, "into the void")
            self.assertLess(time.monotonic() - started, 15, "the call gave up, it did not hang")
            self.assertFails("network", cm.exception)
            self.assertTrue(cm.exception.retryable)
            self.assertIn("in time", cm.exception.message)
            hole.close()
            hole = None
            ds.start()
            await alice.sync()  # re-posts the message the DS never acknowledged
            await bob.sync()
            self.assertEqual([m.text for m in bob.messages(group)], ["into the void"])
        finally:
            if hole is not None:
                hole.close()
            ds.stop()

    async def test_kill_9_during_sends_loses_no_acknowledged_message(self):
        key = g.new_store_key()  # the crash test runs on an encrypted home
        alice = await self.user("heidi", store_key=key)
        bob = await self.user("ivan")
        group = await alice.create_group("crash")
        await alice.add_members(group, ["ivan"])
        await bob.sync()
        del alice  # the child process opens the home
        # No terminal: stdin is /dev/null, output goes to pipes.
        child = subprocess.Popen([sys.executable, os.path.join(HERE, "crash_child.py"), self.home("heidi"), group,
                                  key.hex()],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
        def read_acks():
            acked = {}
            for line in child.stdout:
                _, n, seq = line.split()
                acked[int(n)] = int(seq)
                if len(acked) >= 25:
                    break
            return acked

        acked = await asyncio.to_thread(read_acks)
        child.kill()  # SIGKILL, most likely in the middle of the next send
        child.wait()
        child.stdout.close()
        child.stderr.close()
        self.assertGreaterEqual(len(acked), 25, "the child sent through the binding")

        alice = g.open_client(self.home("heidi"), key)
        await alice.sync()
        mine = {m.text: m.seq for m in alice.messages(group)}
        for n, seq in acked.items():
            self.assertEqual(mine.get(f"crash-msg-{n}"), seq, f"acknowledged message {n} is kept")
        await alice.send(group, "after the crash")
        await bob.sync()
        texts = [m.text for m in bob.messages(group)]
        for n in acked:
            self.assertIn(f"crash-msg-{n}", texts)
        self.assertEqual(texts[-1], "after the crash")
        self.assertEqual(len(texts), len(set(texts)), "nothing delivered twice")

    async def test_link_a_second_device(self):
        phone = await self.user("judy")
        group = await phone.create_group("notes")
        await phone.send(group, "from the phone")
        # The new device's home is encrypted: completing the link reopens it with its key.
        laptop_options = self.options("judy")
        laptop_options.store_key = g.new_store_key()
        laptop = await g.request_link(self.home("judy-laptop"), laptop_options, "laptop")
        codes = laptop.link_pending()
        self.assertIsNotNone(codes)
        shown = await phone.approve_link(codes.link_code, False)
        self.assertEqual((shown.compare, shown.approved), (codes.compare, False))
        approved = await phone.approve_link(codes.link_code, True)
        self.assertTrue(approved.approved)
        events = Collector()
        laptop.set_listener(events)
        await laptop.sync()
        self.assertIsNone(laptop.link_pending())
        linked = [e for e in events.events if isinstance(e, g.Event.LINKED)]
        self.assertEqual(len(linked), 1)
        self.assertEqual((linked[0].groups, linked[0].failed), ([group], []))
        self.assertEqual(sorted(d.label for d in await phone.devices()), sorted(["laptop", d0_label(await phone.devices())]))
        await laptop.send(group, "from the laptop")
        await phone.sync()
        self.assertEqual([m.text for m in phone.messages(group)][-1], "from the laptop")

    async def test_encrypted_home_needs_its_key_and_holds_nothing_in_clear(self):
        key = g.new_store_key()
        self.assertEqual(len(key), 32)
        alice = await self.user("nora-encrypted", store_key=key)
        bob = await self.user("omar-quintero")
        group = await alice.create_group("cardiology-ward-7")
        await alice.add_members(group, ["omar-quintero"])
        await bob.sync()
        await bob.send(group, "patient in bed 12 is allergic to penicillin")
        await alice.sync()
        await alice.put_resource(group, "chart.txt", b"blood pressure 120/80")
        del alice

        disk = b""
        for root, _, files in os.walk(self.home("nora-encrypted")):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    disk += fh.read()
        for secret in [b"cardiology-ward-7", b"allergic to penicillin", b"blood pressure", b"nora-encrypted",
                       b"omar-quintero", group.encode()]:
            self.assertNotIn(secret, disk)

        with self.assertRaises(g.GroveError.Failed) as cm:
            g.open_client(self.home("nora-encrypted"), None)
        self.assertFails("store_key_required", cm.exception)
        with self.assertRaises(g.GroveError.Failed) as cm:
            g.open_client(self.home("nora-encrypted"), g.new_store_key())
        self.assertFails("wrong_store_key", cm.exception)
        with self.assertRaises(g.GroveError.Failed) as cm:
            g.open_client(self.home("nora-encrypted"), b"short")
        self.assertFails("invalid_argument", cm.exception)
        alice = g.open_client(self.home("nora-encrypted"), key)
        self.assertEqual([m.text for m in alice.messages(group)], ["patient in bed 12 is allergic to penicillin"])
        self.assertEqual(await alice.get_resource(group, "chart.txt", None), b"blood pressure 120/80")

        # A home in clear is encrypted the first time it is opened with a key.
        del bob
        bob_key = g.new_store_key()
        bob = g.open_client(self.home("omar-quintero"), bob_key)
        self.assertEqual(len(bob.messages(group)), 1)
        del bob
        with self.assertRaises(g.GroveError.Failed) as cm:
            g.open_client(self.home("omar-quintero"), None)
        self.assertFails("store_key_required", cm.exception)

    async def test_restore_from_a_backup_after_losing_every_device(self):
        phone = await self.user("paula-lost")
        bob = await self.user("quentin-stays")
        group = await phone.create_group("family")
        await phone.add_members(group, ["quentin-stays"])
        await bob.sync()
        await phone.send(group, "before the phone was lost")
        await bob.sync()
        fingerprint = phone.whoami().fingerprint
        passphrase = "correct horse battery staple"
        backup = phone.identity_backup(passphrase)
        with self.assertRaises(g.GroveError.Failed) as cm:
            phone.identity_backup("short")
        self.assertFails("invalid_argument", cm.exception)
        del phone  # lost

        with self.assertRaises(g.GroveError.Failed) as cm:
            await g.restore_client(self.home("paula-wrong"), self.options("paula-lost"), backup,
                                   "not the passphrase at all", "new phone")
        self.assertFails("invalid_argument", cm.exception)
        restored = await g.restore_client(self.home("paula-new"), self.options("paula-lost"), backup, passphrase,
                                          "new phone")
        self.assertIsInstance(restored.event, g.Event.LINKED)
        self.assertEqual((restored.event.groups, restored.event.failed), ([group], []))
        new = restored.client
        self.assertEqual(new.whoami().fingerprint, fingerprint, "the same identity")
        devices = await new.devices()
        self.assertEqual(len(devices), 2)
        lost = [d for d in devices if not d.this_device][0]
        revoked = await new.revoke_device(lost.id)
        self.assertEqual((revoked.removed_from, revoked.failed), ([group], []))
        self.assertEqual(len(await new.devices()), 1)

        await new.send(group, "back on a new phone")
        await bob.sync()
        self.assertEqual(bob.messages(group)[-1].text, "back on a new phone")
        paula = [m for m in bob.members(group) if m.user == "paula-lost"][0]
        self.assertEqual((paula.fingerprint, paula.key, paula.devices), (fingerprint, "pinned", 1),
                         "bob sees no key change and one device")

    async def test_self_update_and_a_successor_group(self):
        alice = await self.user("rita-owner")
        bob = await self.user("sam-stays")
        carol = await self.user("tess-goes")
        group = await alice.create_group("board")
        await alice.add_members(group, ["sam-stays", "tess-goes"])
        for c in (bob, carol):
            await c.sync()
        updated = await alice.self_update(group)
        self.assertTrue(updated.committed)
        await alice.send(group, "after the key refresh")
        await bob.sync()
        self.assertEqual(bob.messages(group)[-1].text, "after the key refresh")

        successor = await alice.create_successor(group, ["tess-goes"])
        self.assertEqual((successor.predecessor, successor.members), (group, ["sam-stays"]))
        events = Collector()
        bob.set_listener(events)
        await bob.sync()
        self.assertIn(g.Event.JOINED(group=successor.group), events.events)
        self.assertTrue(any(isinstance(e, g.Event.REPLACED) and successor.group in e.detail for e in events.events),
                        events.events)
        await alice.send(successor.group, "in the new group")
        await bob.sync()
        await carol.sync()
        self.assertEqual(bob.messages(successor.group)[-1].text, "in the new group")
        self.assertNotIn(successor.group, [grp.id for grp in carol.groups()])
        self.assertFalse(await bob.acknowledge_fork(group), "there was no fork to acknowledge")
        self.assertFalse(await bob.acknowledge_rollback(group), "nor a rollback")

    async def test_history_policy_decides_what_a_new_member_reads(self):
        alice = await self.user("wanda-records")
        bob = await self.user("xavier-late")
        carol = await self.user("yara-late")
        shared = await alice.create_group("shared-records", share_history=True)
        private = await alice.create_group("private-records")
        self.assertEqual((alice.shares_history(shared), alice.shares_history(private)), (True, False))
        for group in (shared, private):
            await alice.put_resource(group, "record", b"written before the add")
        await alice.add_members(shared, ["xavier-late"])
        await alice.add_members(private, ["xavier-late"])
        await bob.sync()
        self.assertEqual(await bob.get_resource(shared, "record", None), b"written before the add")
        self.assertEqual(bob.resources(private), [], "no key for what was written before bob joined")
        with self.assertRaises(g.GroveError.Failed) as cm:
            await bob.get_resource(private, "record", None)
        self.assertFails("unknown_resource", cm.exception)
        await alice.set_history_policy(private, True)
        await alice.add_members(private, ["yara-late"])
        await carol.sync()
        self.assertEqual(await carol.get_resource(private, "record", None), b"written before the add")

    async def test_identity_reset_after_losing_everything_without_a_backup(self):
        phone = await self.user("zoe-reset")
        bob = await self.user("abel-contact")
        group = await bob.create_group("team")
        await bob.add_members(group, ["zoe-reset"])
        await phone.sync()
        old = phone.whoami().fingerprint

        with self.assertRaises(g.GroveError.Failed) as cm:
            await self.user_in("zoe-new", "zoe-reset")
        self.assertFails("server", cm.exception)
        self.assertEqual(cm.exception.server_code, "user_exists")
        new = g.open_client(self.home("zoe-new"), None)
        fingerprint = await new.reset_identity(None)
        self.assertNotEqual(fingerprint, old)
        self.assertEqual(new.whoami().fingerprint, fingerprint)
        with self.assertRaises(g.GroveError.Failed) as cm:
            await phone.sync()
        self.assertEqual(cm.exception.server_code, "device_revoked", repr(cm.exception))

        with self.assertRaises(g.GroveError.Failed) as cm:
            await bob.add_members(group, ["zoe-reset"])
        self.assertFails("key_changed", cm.exception)
        contact = await bob.trust_new_key("zoe-reset")
        self.assertEqual(contact.fingerprint, fingerprint)
        await bob.add_members(group, ["zoe-reset"])
        with self.assertRaises(g.GroveError.Failed) as cm:
            await bob.send(group, "too early")
        self.assertFails("unlisted_device", cm.exception)  # the old identity's device is still in
        report = await bob.sync()
        self.assertIn(g.Event.OLD_DEVICES_REMOVED(group=group), report.events)
        await new.sync()
        await bob.send(group, "welcome back")
        await new.sync()
        self.assertEqual(new.messages(group)[-1].text, "welcome back")

    async def test_contact_codes_and_safety_numbers(self):
        alice = await self.user("kim")
        bob = await self.user("lee")
        contact = await alice.import_contact(bob.contact_code())
        self.assertTrue(contact.verified)
        self.assertEqual(contact.fingerprint, bob.whoami().fingerprint)
        a = await alice.safety_number("lee")
        b = await bob.safety_number("kim")
        self.assertEqual(a.number, b.number)
        forged = bob.contact_code().rsplit(":", 1)[0] + ":" + "ab" * 32
        with self.assertRaises(g.GroveError.Failed) as cm:
            await self.user("mia")
            mia = g.open_client(self.home("mia"), None)
            await mia.import_contact(forged)
        self.assertFails("contact_code_mismatch", cm.exception)


def d0_label(devices):
    """The label of the first device (whatever `create` named it)."""
    return [d.label for d in devices if d.label != "laptop"][0]


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(BindingTest)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"python binding tests: {passed} passed, {failed} failed, {len(result.skipped)} skipped")
    sys.exit(0 if failed == 0 and passed > 0 else 1)
