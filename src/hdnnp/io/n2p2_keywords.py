"""The ``input.nn`` keywords n2p2 v2.3.0 knows (``Settings::knownKeywords`` in libnnp).

n2p2 accepts a file with other keywords but logs ``WARNING: Unknown keyword`` for each, in
every program and in every LAMMPS run of the potential. Files hdnnp writes therefore contain
only these keywords, plus hdnnp's own, which all start with ``hdnnp_`` and are removed by
``hdnnp export lammps``. (Names only: an interface list, taken from n2p2's documented keywords.)
"""

from __future__ import annotations

#: prefix of the keywords only hdnnp reads
HDNNP_KEYWORD_PREFIX = "hdnnp_"

#: main keyword names known to n2p2 v2.3.0 (61daa0df)
N2P2_KEYWORDS = frozenset("""
number_of_elements elements atom_energy cutoff_type symfunction_short scale_symmetry_functions
scale_min_short scale_max_short center_symmetry_functions scale_symmetry_functions_sigma
global_hidden_layers_short global_hidden_layers_electrostatic global_nodes_short
global_nodes_electrostatic global_activation_short global_activation_electrostatic
element_hidden_layers_short element_hidden_layers_electrostatic element_nodes_short
element_nodes_electrostatic element_activation_short element_activation_electrostatic
normalize_nodes mean_energy conv_length conv_energy conv_charge nnp_type fixed_gausswidth
ewald_truncation_error_method ewald_prec screen_electrostatics four_pi_epsilon
random_seed test_fraction epochs normalize_data_set use_short_forces rmse_threshold
rmse_threshold_energy rmse_threshold_force rmse_threshold_charge rmse_threshold_trials
rmse_threshold_trials_energy rmse_threshold_trials_force rmse_threshold_trials_charge
energy_fraction force_fraction force_energy_ratio charge_fraction use_old_weights_short
use_old_weights_charge weights_min weights_max initial_hardness nguyen_widrow_weights_short
nguyen_widrow_weights_charge precondition_weights main_error_metric write_trainpoints
write_trainforces write_traincharges write_weights_epoch write_neuronstats write_trainlog
repeated_energy_update updater_type parallel_mode jacobian_mode update_strategy selection_mode
selection_mode_energy selection_mode_force selection_mode_charge task_batch_size_energy
task_batch_size_force task_batch_size_charge gradient_type gradient_eta gradient_adam_eta
gradient_adam_beta1 gradient_adam_beta2 gradient_adam_epsilon kalman_type kalman_epsilon
kalman_eta kalman_etatau kalman_etamax kalman_q0 kalman_qtau kalman_qmin kalman_lambda_short
kalman_nue_short memorize_symfunc_results force_weight
""".split())

#: n2p2's alternative names for some of them
N2P2_KEYWORD_ALIASES = {
    "nnp_generation": "nnp_type", "nnp_type_gen": "nnp_type", "nnp_gen": "nnp_type",
    "short_energy_error_threshold": "rmse_threshold_energy",
    "short_force_error_threshold": "rmse_threshold_force",
    "short_energy_fraction": "energy_fraction", "short_force_fraction": "force_fraction",
    "symfunction": "symfunction_short",
}


def n2p2_knows(keyword: str) -> bool:
    """True if n2p2 v2.3.0 reads ``keyword`` without an 'Unknown keyword' warning."""
    return keyword in N2P2_KEYWORDS or keyword in N2P2_KEYWORD_ALIASES


def keyword_of(line: str) -> str | None:
    """The keyword of an input.nn line as n2p2 parses it (text before '#' or '!'), or None."""
    for mark in ("#", "!"):
        line = line.split(mark, 1)[0]
    words = line.split()
    return words[0] if words else None
