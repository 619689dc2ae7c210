//! The broken twin of the sole tier (`MemoryLayer::make_sole`: a memory tier that compares no
//! versions and keeps no floors, its bucket locks alone ordering its writes): sound as a
//! cache's only layer, and caught where it does not belong. With L1 made sole above L2, two
//! racing sets can leave the layers holding different values: L2 keeps the higher version, L1
//! whichever write took its bucket lock last, and loom must find the interleaving where those
//! are the two different writes.
#![cfg(loom)]

use loom_tests::model::two_sets_across_layers_scenario;

#[test]
#[should_panic(expected = "layers disagree on the last writer")]
fn a_sole_l1_above_another_layer_is_caught() {
    let _broken = strata::break_for_test(strata::Broken::SoleTierWithLayersBelow);
    loom::model(two_sets_across_layers_scenario);
}
