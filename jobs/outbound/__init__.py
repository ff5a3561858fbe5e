"""Alerts out: the pipeline publishes each new alert once (``publisher``), the dispatcher hands them
to webhooks (``dispatcher`` + ``webhooks``). Settings: ``alerts_out`` (coattail/settings/outbound.py).

No Spark here: the dispatcher runs in its own pod (``coattail alerts dispatch``) or as a thread.
"""
