"""Moved: the Paddle Lite ``.nb`` runner is ``ppnets/cli/device/lite_runner.py`` (``ppnets deploy
lite-bench`` on this host, ``python3 lite_runner.py`` on a board)."""
import sys

if __name__ == "__main__":
    print("error: python -m ppnets.deploy.lite_runner is now `ppnets deploy lite-bench ...` "
          "(the same options)", file=sys.stderr)
    sys.exit(2)
raise ImportError("ppnets.deploy.lite_runner moved to ppnets.cli.device.lite_runner "
                  "(benchmark_nb); the command is `ppnets deploy lite-bench`")
