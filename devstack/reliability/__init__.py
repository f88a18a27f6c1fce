"""Fault-injection reliability harness for the local stack (`python -m devstack.reliability`).

It sends a seeded scenario of WeChat pushes through the local stack while AWS calls, WeChat API
calls and function workers fail, then checks that no message, media file or citizen notice was lost
or duplicated. See docs/reliability.md.
"""
