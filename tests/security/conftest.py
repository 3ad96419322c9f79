"""The attack battery: default deny by shape, tried from outside as an attacker would.

Every module here runs real servers on loopback (the demo CRM, hostile or
lenient upstreams of our own, BottleCRM where a module says so) behind a real
gateway, and checks what reaches the low-clearance caller and what reaches the
CRM (at the CRM, never through the gateway). Each module keeps its upstream in
a helper module beside it (`lenient_upstream.py`, `hostile_upstream.py`, ...)
and imports its fixtures explicitly, so modules stay independent.
"""
