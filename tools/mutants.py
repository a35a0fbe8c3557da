"""The mutants `tools/mutation.py` applies: one small deliberate bug each, and the tests that must catch it.

Each mutant replaces one exact snippet (`find`, which must occur exactly once in `path`) with `replace`, then runs only
`tests` (pytest node ids, relative to the repository root). A mutant that no test kills points at a mechanism the suite
does not check. `equivalent` names a mutant that cannot change what the code computes, with the reason; it is run
anyway and reported as equivalent when it survives.

When a method or noise model changes, keep its mutants in step: a `find` that no longer matches is reported as stale.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: replace `find` by `replace` in `path` and expect `tests` to fail."""

    id: str
    path: str  # repository-relative
    find: str
    replace: str
    tests: tuple[str, ...]
    what: str  # the mechanism the bug removes or breaks, in words
    equivalent: str | None = None  # why the mutant cannot change behaviour, when it cannot


NOISE_STATS = "tests/test_noise_statistics.py"
NOISE = "tests/test_noise.py"
TURN = "tests/test_mechanisms_turn.py"
DM = "tests/test_mechanisms_dividemix.py"
CT = "tests/test_mechanisms_coteaching.py"
METHODS = "tests/test_methods.py"
UC = "tests/test_mechanisms_unicon.py"
FLOPS = "tests/test_flops.py"

SYN = "lnlbench/noise/synthetic.py"
IDN = "lnlbench/noise/idn.py"
SEL = "lnlbench/sample_selection.py"
MIX = "lnlbench/mixmatch.py"
P_TURN = "plugins/turn.py"
P_DM = "plugins/dividemix.py"
P_CT = "plugins/coteaching.py"
P_UC = "plugins/unicon.py"

MUTANTS: tuple[Mutant, ...] = (
    # --- noise models -------------------------------------------------------------------------------------------------
    Mutant(
        "sym-misses-a-class", SYN,
        "(clean[chosen] + rng.integers(1, num_classes, size=k)) % num_classes",
        "(clean[chosen] + rng.integers(1, num_classes - 1, size=k)) % num_classes",
        (NOISE_STATS,), "sym: the offset never reaches C - 1, so one other class is never a flip target",
    ),
    Mutant(
        "sym-skewed-offset", SYN,
        "(clean[chosen] + rng.integers(1, num_classes, size=k)) % num_classes",
        "(clean[chosen] + np.minimum(rng.integers(1, num_classes + 1, size=k), num_classes - 1)) % num_classes",
        (NOISE_STATS,), "sym: offset C - 1 twice as likely as the others (off-diagonals not uniform)",
    ),
    Mutant(
        "sym-to-true-class", SYN,
        "(clean[chosen] + rng.integers(1, num_classes, size=k)) % num_classes",
        "(clean[chosen] + rng.integers(0, num_classes, size=k)) % num_classes",
        (NOISE_STATS,), "sym: a flip may land on the true class (the Co-teaching convention excludes it)",
    ),
    Mutant(
        "sym-dividemix-skips-class-0", SYN,
        "noisy[chosen] = rng.integers(0, num_classes, size=k)",
        "noisy[chosen] = rng.integers(1, num_classes, size=k)",
        (NOISE_STATS,), "sym-dividemix: redraws never pick class 0 (not uniform over all classes)",
    ),
    Mutant(
        "pairflip-wrong-target", SYN,
        "{c: (c + 1) % num_classes for c in range(num_classes)}",
        "{c: (c - 1) % num_classes for c in range(num_classes)}",
        (f"{NOISE}::test_pairflip_flips_each_class_exactly_to_the_next",), "pairflip: c -> c - 1 instead of c + 1",
    ),
    Mutant(
        "asym-wrong-map-entry", SYN,
        "CIFAR10_ASYM_MAP: dict[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}",
        "CIFAR10_ASYM_MAP: dict[int, int] = {9: 1, 2: 0, 4: 6, 3: 5, 5: 3}",
        (f"{NOISE}::test_asym_cifar10_flips_only_along_the_classic_map",), "asym: deer -> frog instead of horse",
    ),
    Mutant(
        "class-map-flip-count", SYN,
        "        k = count_for(rate, members.shape[0])\n        if k:",
        "        k = count_for(rate, members.shape[0]) - 1\n        if k > 0:",
        (f"{NOISE}::test_pairflip_flips_each_class_exactly_to_the_next",
         f"{NOISE}::test_asym_cifar10_flips_only_along_the_classic_map"),
        "asym/pairflip: one flip fewer than round(rate * n_c) per class",
    ),
    Mutant(
        "idn-flip-rate-std", IDN,
        "FLIP_RATE_STD = 0.1",
        "FLIP_RATE_STD = 0.2",
        (NOISE_STATS,), "idn: per-sample flip rates spread twice as wide as Normal(rate, 0.1)",
    ),
    Mutant(
        "idn-untruncated", IDN,
        "a, b = (0.0 - rate) / FLIP_RATE_STD, (1.0 - rate) / FLIP_RATE_STD",
        "a, b = -40.0, 40.0",
        (NOISE_STATS,), "idn: the normal is not truncated to [0, 1]",
    ),
    Mutant(
        "idn-one-rate-for-all", IDN,
        "q = flip_rates(rate, n, rng)",
        "q = np.full(n, rate); rng.random(n)",
        (NOISE_STATS,), "idn: every sample flips with the mean rate (no per-sample rate)",
    ),
    Mutant(
        "idn-rate-inverted", IDN,
        "probs[:, c] = 1.0 - q[idx]",
        "probs[:, c] = q[idx]",
        (NOISE_STATS,), "idn: a sample keeps its label with probability q instead of 1 - q",
    ),
    Mutant(
        "idn-true-class-not-masked", IDN,
        "            logits[:, c] = -np.inf\n",
        "",
        (NOISE_STATS,), "idn: the true class takes part in the softmax over flip targets",
    ),
    Mutant(
        "idn-lands-on-true-class", IDN,
        "noisy[idx] = np.minimum(chosen, num_classes - 1)",
        "noisy[idx] = np.minimum(chosen + 1, num_classes - 1)",
        (NOISE_STATS,), "idn: the drawn class shifted by one, so some flips land on the true class",
    ),
    Mutant(
        "idn-keep-mass-added", IDN,
        "probs[:, c] = 1.0 - q[idx]",
        "probs[:, c] += 1.0 - q[idx]",
        (NOISE_STATS,), "idn: the keep probability added to the true class's entry",
        equivalent="the true class's logit is -inf, so its entry is exactly 0 before the addition: += equals =",
    ),
    # --- shared selection -----------------------------------------------------------------------------------------
    Mutant(
        "balance-to-largest-class", SEL,
        "k_fallback = min(nonzero)",
        "k_fallback = max(nonzero)",
        (f"{TURN}::test_threshold_and_balance_rule_decide_the_selection",),
        "TURN step 2: balanced to the largest clean count instead of the smallest",
    ),
    Mutant(
        "threshold-inclusive", SEL,
        "clean_counts[c] = int((prob[idx] > threshold).sum())",
        "clean_counts[c] = int((prob[idx] >= threshold).sum())",
        (f"{TURN}::test_threshold_and_balance_rule_decide_the_selection",),
        "TURN step 2: a posterior equal to the threshold counts as clean (the rule is 'exceeds')",
    ),
    Mutant(
        "least-confident-first", SEL,
        "order = torch.sort(-prob[idx], stable=True).indices",
        "order = torch.sort(prob[idx], stable=True).indices",
        (f"{TURN}::test_threshold_and_balance_rule_decide_the_selection",),
        "TURN step 2: each class keeps its least confident samples",
    ),
    Mutant(
        "gmm-clean-is-high-loss", SEL,
        "clean, noisy = int(means.argmin()), int(means.argmax())",
        "clean, noisy = int(means.argmax()), int(means.argmin())",
        (f"{METHODS}::test_gmm_split_picks_the_low_loss_mode",), "GMM: the high-loss component read as clean",
    ),
    Mutant(
        "small-loss-keeps-forget-fraction", SEL,
        "keep = int((1.0 - forget_rate) * batch_size)",
        "keep = int(forget_rate * batch_size)",
        (f"{CT}::test_training_follows_the_schedule_batch_by_batch",),
        "co-teaching: keeps the forget fraction instead of 1 - R(t)",
    ),
    Mutant(
        "small-loss-picks-large", SEL,
        "return torch.sort(losses.detach(), stable=True).indices[:keep]",
        "return torch.sort(losses.detach(), stable=True, descending=True).indices[:keep]",
        (f"{METHODS}::test_coteaching_peers_train_on_each_others_selection",),
        "co-teaching: the LARGE-loss samples are exchanged",
    ),
    # --- MixMatch pieces ------------------------------------------------------------------------------------------
    Mutant(
        "no-sharpening", MIX,
        "pt = p.pow(1.0 / temperature)",
        "pt = p",
        (f"{DM}::test_co_refinement_weights_label_and_prediction_by_the_clean_probability",),
        "DivideMix: targets not sharpened",
    ),
    Mutant(
        "co-refine-weights-swapped", MIX,
        "sharpen(w * labels_onehot + (1.0 - w) * p_net, temperature)",
        "sharpen((1.0 - w) * labels_onehot + w * p_net, temperature)",
        (f"{DM}::test_co_refinement_weights_label_and_prediction_by_the_clean_probability",),
        "DivideMix: the label weighted by the noisy probability instead of the clean one",
    ),
    Mutant(
        "co-guess-first-only", MIX,
        "return sharpen(torch.stack(probs).mean(0), temperature)",
        "return sharpen(probs[0], temperature)",
        (f"{DM}::test_co_refinement_weights_label_and_prediction_by_the_clean_probability",),
        "DivideMix: the guess is one prediction, not the average of both networks' predictions",
    ),
    Mutant(
        "mix-lambda-unbounded", MIX,
        "    lam = max(lam, 1.0 - lam)\n",
        "",
        (f"{METHODS}::test_mixmatch_pieces",), "MixMatch: l is not max(l, 1 - l)",
    ),
    Mutant(
        "rampup-unclipped", MIX,
        "return lambda_u * float(min(max((current - warmup) / rampup_length, 0.0), 1.0))",
        "return lambda_u * float(max((current - warmup) / rampup_length, 0.0))",
        (f"{DM}::test_unlabelled_loss_enters_with_its_linearly_ramped_weight",),
        "DivideMix: lambda_u keeps growing after the ramp-up",
    ),
    Mutant(
        "unlabelled-loss-zero", MIX,
        "        lu = (torch.softmax(logits_u.float(), dim=1) - targets_u).pow(2).mean()",
        "        lu = logits_x.new_zeros((), dtype=torch.float32)",
        (f"{DM}::test_a_zero_lambda_u_changes_training",),
        "DivideMix: the unlabelled loss is always zero",
    ),
    Mutant(
        "negative-entropy-sign", MIX,
        "return (probs * torch.log(probs.clamp_min(1e-12))).sum(1).mean()",
        "return -(probs * torch.log(probs.clamp_min(1e-12))).sum(1).mean()",
        (f"{DM}::test_negative_entropy_penalty_in_warmup_for_asymmetric_noise",),
        "DivideMix: the warm-up penalty rewards confidence instead of penalising it",
    ),
    # --- DivideMix plugin -----------------------------------------------------------------------------------------
    Mutant(
        "test-net1-only", P_DM,
        "return self.net1(x).float() + self.net2(x).float()",
        "return 2 * self.net1(x).float()",
        (f"{DM}::test_test_time_prediction_combines_both_networks",), "DivideMix: tested with network 1 alone",
    ),
    Mutant(
        "own-division", P_DM,
        "peer_prob = probs[1 - i]",
        "peer_prob = probs[i]",
        (f"{DM}::test_each_network_learns_from_the_division_of_the_other",),
        "DivideMix: each network trains on its OWN division",
    ),
    Mutant(
        "co-guess-one-network", P_DM,
        "for m in (net, peer) for v in (u, u2)]",
        "for m in (net, net) for v in (u, u2)]",
        (f"{DM}::test_co_guessing_uses_both_networks_and_refinement_the_networks_own",),
        "DivideMix: unlabelled targets guessed by the training network alone",
    ),
    Mutant(
        "co-refine-with-peer", P_DM,
        "p_x = (torch.softmax(net(x).float(), 1) + torch.softmax(net(x2).float(), 1)) / 2",
        "p_x = (torch.softmax(peer(x).float(), 1) + torch.softmax(peer(x2).float(), 1)) / 2",
        (f"{DM}::test_co_guessing_uses_both_networks_and_refinement_the_networks_own",),
        "DivideMix: labels refined with the peer's prediction instead of the network's own",
    ),
    Mutant(
        "no-co-refinement", P_DM,
        'targets_x = co_refine(y, w, p_x, hp["T"])',
        "targets_x = y",
        (f"{DM}::test_co_guessing_uses_both_networks_and_refinement_the_networks_own",),
        "DivideMix: labelled targets are the noisy labels (no co-refinement)",
    ),
    Mutant(
        "hard-clean-weight", P_DM,
        "w = prob[bx_dev]",
        "w = torch.ones(len(bx), device=dev)",
        (f"{DM}::test_co_guessing_uses_both_networks_and_refinement_the_networks_own",),
        "DivideMix: co-refinement ignores the clean probability (w = 1)",
    ),
    Mutant(
        "no-unlabelled-term", P_DM,
        "return lx + lamb * lu + uniform_prior_penalty(logits)",
        "return lx + uniform_prior_penalty(logits)",
        (f"{DM}::test_unlabelled_loss_enters_with_its_linearly_ramped_weight",
         f"{DM}::test_a_zero_lambda_u_changes_training"),
        "DivideMix: the unlabelled loss never enters the objective",
    ),
    Mutant(
        "no-prior-penalty", P_DM,
        "return lx + lamb * lu + uniform_prior_penalty(logits)",
        "return lx + lamb * lu",
        (f"{DM}::test_unlabelled_loss_enters_with_its_linearly_ramped_weight",),
        "DivideMix: the uniform-prior penalty is dropped",
    ),
    Mutant(
        "ramp-per-epoch", P_DM,
        'lamb = linear_rampup(epoch + batch_idx / num_iter, warmup, rampup, hp["lambda_u"])',
        'lamb = linear_rampup(epoch, warmup, rampup, hp["lambda_u"])',
        (f"{DM}::test_unlabelled_loss_enters_with_its_linearly_ramped_weight",),
        "DivideMix: the ramp advances per epoch, not per batch (official: epoch + batch_idx / num_iter)",
    ),
    Mutant(
        "ramp-full-weight", P_DM,
        'lamb = linear_rampup(epoch + batch_idx / num_iter, warmup, rampup, hp["lambda_u"])',
        'lamb = hp["lambda_u"]',
        (f"{DM}::test_unlabelled_loss_enters_with_its_linearly_ramped_weight",),
        "DivideMix: lambda_u at full weight from the first training epoch (no ramp-up)",
    ),
    Mutant(
        "no-negative-entropy", P_DM,
        'full = loss + negative_entropy(logits) if hp["conf_penalty"] else loss',
        "full = loss",
        (f"{DM}::test_negative_entropy_penalty_in_warmup_for_asymmetric_noise",),
        "DivideMix: no confidence penalty in warm-up",
    ),
    Mutant(
        "no-conf-penalty-for-asym", P_DM,
        'if noise in ("asym", "pairflip"):',
        'if noise in ("pairflip",):',
        (f"{DM}::test_negative_entropy_penalty_in_warmup_for_asymmetric_noise",),
        "DivideMix: asymmetric (class-map) noise does not switch the penalty on",
    ),
    Mutant(
        "fixed-p-threshold", P_DM,
        'labeled_mask = peer_prob > hp["p_threshold"]',
        "labeled_mask = peer_prob > 0.5",
        (f"{METHODS}::test_dividemix_split_follows_the_threshold_and_is_exchanged",),
        "DivideMix: p_threshold ignored",
    ),
    # --- TURN plugin ----------------------------------------------------------------------------------------------
    Mutant(
        "turn-fresh-head", P_TURN,
        "        model.get_classifier().load_state_dict(head.state_dict())\n",
        "",
        (f"{TURN}::test_step3_starts_from_the_step1_head_and_the_pretrained_backbone",),
        "TURN: step 3 starts from a fresh head instead of the step-1 head",
    ),
    Mutant(
        "turn-fresh-model", P_TURN,
        "        model.get_classifier().load_state_dict(head.state_dict())\n",
        "        model.get_classifier().load_state_dict(head.state_dict())\n        model = ctx.make_model(1)\n",
        (f"{TURN}::test_step3_starts_from_the_step1_head_and_the_pretrained_backbone",),
        "TURN: step 3 fine-tunes a newly made model (fresh head)",
    ),
    Mutant(
        "turn-all-samples", P_TURN,
        'ctx, "finetune", model, indices, ctx.noisy_labels',
        'ctx, "finetune", model, torch.arange(len(ctx.noisy_labels)), ctx.noisy_labels',
        (f"{TURN}::test_step3_fine_tunes_on_exactly_the_selected_samples",),
        "TURN: step 3 fine-tunes on every sample",
    ),
    Mutant(
        "turn-the-rest", P_TURN,
        "indices = torch.nonzero(mask).flatten()",
        "indices = torch.nonzero(~mask).flatten()",
        (f"{TURN}::test_step3_fine_tunes_on_exactly_the_selected_samples",),
        "TURN: step 3 fine-tunes on the rejected samples",
    ),
    Mutant(
        "turn-step1-plain-ce", P_TURN,
        'head, ce = probe_losses(ctx, "linear_probe", head, train_feats, test_feats, lp, hp["loss"], hp["gce_q"])',
        'head, ce = probe_losses(ctx, "linear_probe", head, train_feats, test_feats, lp, "ce", hp["gce_q"])',
        (f"{TURN}::test_step1_probes_with_the_robust_loss",), "TURN: step 1 probes with plain CE instead of GCE",
    ),
    Mutant(
        "turn-fixed-threshold", P_TURN,
        'hp["threshold"], hp["balance"]',
        '0.5, hp["balance"]',
        (f"{TURN}::test_threshold_and_balance_rule_decide_the_selection",), "TURN: the threshold hparam is ignored",
    ),
    Mutant(
        "turn-always-balanced", P_TURN,
        'hp["threshold"], hp["balance"]',
        'hp["threshold"], "min"',
        (f"{TURN}::test_threshold_and_balance_rule_decide_the_selection",), "TURN: balance='none' is ignored",
    ),
    # --- co-teaching plugin ---------------------------------------------------------------------------------------
    Mutant(
        "forget-schedule-early", P_CT,
        "return tau * min(epoch / num_gradual, 1.0)",
        "return tau * min((epoch + 1) / num_gradual, 1.0)",
        (CT,), "co-teaching: R(t) off by one epoch (forgets in the first epoch, reaches tau at T_k - 1)",
    ),
    Mutant(
        "forget-schedule-late", P_CT,
        "return tau * min(epoch / num_gradual, 1.0)",
        "return tau * min(epoch / (num_gradual + 1), 1.0)",
        (CT,), "co-teaching: R(t) reaches tau one epoch after T_k",
    ),
    Mutant(
        "forget-rate-next-epoch", P_CT,
        "rate = forget_rate_at(epoch, tau, num_gradual)",
        "rate = forget_rate_at(epoch + 1, tau, num_gradual)",
        (CT,), "co-teaching: training uses the next epoch's forget rate",
    ),
    Mutant(
        "coteaching-self-training", P_CT,
        "loss1 = F.cross_entropy(net1(x1[pick_by_2.to(x1.device)]).float(), y1[pick_by_2])",
        "loss1 = F.cross_entropy(net1(x2[pick_by_1.to(x2.device)]).float(), y2[pick_by_1])",
        (f"{METHODS}::test_coteaching_peers_train_on_each_others_selection",),
        "co-teaching: network 1 trains on its own small-loss picks (no exchange)",
    ),
    Mutant(
        "coteaching-shared-self-training", P_CT,
        "loss2 = F.cross_entropy(logits2[pick_by_1].float(), y1[pick_by_1])",
        "loss2 = F.cross_entropy(logits2[pick_by_2].float(), y1[pick_by_2])",
        (f"{METHODS}::test_coteaching_peers_train_on_each_others_selection",),
        "co-teaching (shared order): network 2 trains on its own picks",
    ),
    # --- UNICON ---------------------------------------------------------------------------------------------------
    Mutant(
        "unicon-global-cut", P_UC,
        "labeled = uniform_selection(jsd, ctx.noisy_labels, ratio, ctx.num_classes)",
        "labeled = torch.sort(torch.argsort(jsd, stable=True)[: len(uniform_selection(jsd, ctx.noisy_labels, ratio, "
        "ctx.num_classes))]).values",
        (UC,), "UNICON: the labelled set is the lowest divergences overall, not an equal share of every class",
    ),
    Mutant(
        "unicon-no-contrastive", P_UC,
        'return lx + lamb * lu + float(hp["lambda_c"]) * contrastive + uniform_prior_penalty(logits)',
        "return lx + lamb * lu + uniform_prior_penalty(logits)",
        (UC,), "UNICON: the contrastive loss never enters the step",
    ),
    Mutant(
        "unicon-mix-weak-views", P_UC,
        "mix(torch.cat([x3, x4, u3, u4])",
        "mix(torch.cat([x, x2, u, u2])",
        (UC,), "UNICON: MixMatch mixes the weak views instead of the strong (AutoAugment) ones",
    ),
    Mutant(
        "unicon-needless-forward", P_UC,
        "p_x = (torch.softmax(net(x).float(), 1) + torch.softmax(net(x2).float(), 1)) / 2",
        "p_x = (torch.softmax(net(x).float(), 1) + torch.softmax(net(x2).float(), 1)) / 2 + 0 * net(x).float()",
        (f"{FLOPS}::test_pass_model_predicts_the_counted_flops[unicon]",),
        "UNICON: one needless forward per step (the cost column would charge work the method does not need)",
    ),
)
