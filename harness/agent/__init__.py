"""What the host knows of the device agent: the bundle shipped to devices (:mod:`~harness.agent.bundle`), the
line protocol (:mod:`~harness.agent.protocol`) and the checks on every message a device sends
(:mod:`~harness.agent.validate`). The agent itself is ``device_agents/hilbench_agent``."""
