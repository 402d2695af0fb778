#!/usr/bin/env python3
# Drives `rotor chat` through a real pseudo-terminal, waiting for what the chat prints rather
# than for fixed delays, so a slow machine cannot make it flaky.
# usage: pty_chat.py SCENARIO ROTOR ARGS...   (SCENARIO: interrupt-answer | interrupt-prompt)
# Exit 0 when the scenario behaves, 1 with a one-line reason otherwise.
import os, pty, select, sys, time

TIMEOUT = 120.0


def main():
    scenario, argv = sys.argv[1], sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    seen = bytearray()

    def fail(why):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        print("pty_chat: " + why)
        sys.exit(1)

    def pump(until):
        """reads what the chat prints until until() holds; False when the terminal closed first"""
        end = time.time() + TIMEOUT
        while not until() and time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    return False
                seen.extend(chunk)
        return until()

    def wait_for(token, after=0):
        if not pump(lambda: seen.find(token, after) >= 0):
            fail("never saw %r; output so far: %r" % (token, bytes(seen[-300:])))
        return seen.find(token, after)

    def finish():
        # drain until the child closes the terminal, then collect its status
        pump(lambda: False)
        end = time.time() + 10
        while time.time() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.1)
        fail("the chat did not exit; output: %r" % bytes(seen[-300:]))

    p = wait_for(b"> ")
    if scenario == "interrupt-answer":
        os.write(fd, b"tell me a story\r")
        q = wait_for(b"tell me a story", p)
        # let some of the answer stream before interrupting it
        n0 = len(seen)
        if not pump(lambda: len(seen) >= n0 + 40):
            fail("the chat ended while answering: %r" % bytes(seen[-300:]))
        os.write(fd, b"\x03")
        q = wait_for(b"[interrupted]", q)
        wait_for(b"> ", q)
        os.write(fd, b"/exit\r")
    elif scenario == "interrupt-prompt":
        os.write(fd, b"\x03")
    else:
        fail("unknown scenario " + scenario)
    rc = finish()
    if rc != 0:
        fail("chat exited with %d; output: %r" % (rc, bytes(seen[-300:])))
    sys.exit(0)


main()
