"""`--rewrite` for the Raft transcripts (tests/unit/raft/testdata/*.txt). pytest reads this option
only when this directory is named on the command line; PYKRON_REWRITE=1 works from anywhere."""


def pytest_addoption(parser):
    parser.addoption("--rewrite", action="store_true", default=False,
                     help="rewrite the expected output blocks of tests/unit/raft/testdata/*.txt")
