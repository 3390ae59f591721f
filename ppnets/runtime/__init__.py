"""The Paddle runtime side shared by benchmarking and deployment: the deploy form of a model
as a Paddle Inference program (PIR, :mod:`.program`) or a legacy old-IR program
(:mod:`.legacy`, for Paddle Lite and PaddleSlim), predictors configured with the known IR-pass
workarounds (:mod:`.predictor`), and the check that a runtime computes what eager computes
(:mod:`.compare`)."""
from .compare import DEFAULT_ATOL, RTOL, compare_all_outputs, compare_outputs
from .legacy import old_ir_ops, save_legacy
from .predictor import (KNOWN_PASS_CRASHES, create_predictor, make_config, pass_workarounds,
                        run_predictor, stage_input)
from .program import check_input_size, deploy_form, export_program, program_op_names

__all__ = ["DEFAULT_ATOL", "RTOL", "compare_outputs", "compare_all_outputs", "old_ir_ops",
           "save_legacy", "KNOWN_PASS_CRASHES", "create_predictor", "make_config",
           "pass_workarounds", "run_predictor", "stage_input", "check_input_size", "deploy_form",
           "export_program", "program_op_names"]
