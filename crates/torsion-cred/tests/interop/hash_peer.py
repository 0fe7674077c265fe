"""The other side of torsion-cred's hash interop test: Python's argon2-cffi (libargon2, the
reference implementation) and bcrypt (pyca), nothing written for Torsion.

    hash_peer.py verify HASH        password on stdin: prints "match" or "mismatch"
    hash_peer.py make               password on stdin: prints an argon2-cffi hash with its
                                    defaults, then a bcrypt hash at cost 4, one a line
"""
import sys

import argon2
import bcrypt


def main():
    password = sys.stdin.buffer.read()
    if sys.argv[1] == "verify":
        try:
            argon2.PasswordHasher().verify(sys.argv[2], password)
            print("match")
        except argon2.exceptions.VerifyMismatchError:
            print("mismatch")
    elif sys.argv[1] == "make":
        print(argon2.PasswordHasher().hash(password))
        print(bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode())
    else:
        sys.exit("unknown command " + sys.argv[1])


main()
