"""A lab of benchmark hosts driven through Ansible: inventory, scheduling, playbooks, dispatch.

Timing-sensitive work stays on each host (it runs `perfsuite run` itself); the controller
provisions (`lab setup`), hands out configurations and brings results home (`lab run`).
"""
