"""services/executor/plans.py: what a job inherits of the executor's environment (only what
[executor] env_passthrough names, never PYKRON_*), and the user it runs as ([executor] run_as
unless the job names its own su)."""

from services.executor import plans

SHELL = {"shell": plans.shell_plan}


def job(**config):
    return {"name": "backup", "executor": "shell", "executor_config": {"command": "true", **config}}


def test_a_job_sees_only_the_passed_through_variables_and_never_pykrons_own():
    environ = {"PATH": "/bin", "HOME": "/root", "PYKRON_KEY": "/secret/client.key", "AWS_SECRET_ACCESS_KEY": "x",
               "LANG": "C.UTF-8"}
    base = plans.job_environment(["PATH", "HOME", "LANG", "TZ", "PYKRON_KEY"], environ)
    assert base == {"PATH": "/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    env = plans.plan(SHELL, job(env="A=1"), base).env
    assert env == {**base, "ENV_JOB_NAME": "backup", "A": "1"}


def test_jobs_run_as_run_as_unless_they_name_their_own_su():
    assert (plans.plan(SHELL, job(), {}, "nobody:nogroup").user, plans.plan(SHELL, job(), {}, "nobody").group) == (
        "nobody", None)
    assert plans.plan(SHELL, job(), {}, "nobody:nogroup").group == "nogroup"
    assert plans.plan(SHELL, job(su="daemon"), {}, "nobody").user == "daemon"
    assert plans.plan(SHELL, job(), {}).user is None  # no run_as: the executor's own user


def test_with_the_acl_on_no_job_runs_as_the_nodes_own_user():
    import os
    import pwd

    import pytest

    from common.errors import BadRequest

    me = os.geteuid()
    with pytest.raises(BadRequest, match="run_as"):
        plans.plan(SHELL, job(), {}, forbid_uid=me)  # no run_as: it would be the executor's user
    with pytest.raises(BadRequest, match="node's own user"):
        plans.plan(SHELL, job(su=pwd.getpwuid(me).pw_name), {}, "nobody", forbid_uid=me)
    assert plans.plan(SHELL, job(), {}, "nobody", forbid_uid=me).user == "nobody"
    assert plans.plan(SHELL, job(su="daemon"), {}, forbid_uid=me).user == "daemon"
