//! XLM-RoBERTa sentence embeddings against real PyTorch + sentence-transformers outputs
//! (`tests/fixtures/xlmr`, made by `scripts/make_fixtures.py xlmr`): the RoBERTa position
//! offset (`pad_token_id + 1`), a SentencePiece-style Unigram tokenizer, `<pad>` = 1.

use crate::encoder_fixture::EncoderFixture;

const FX: EncoderFixture = EncoderFixture {
    family: "xlmr",
    dim: 32,
};

#[test]
fn xlmr_tokenization_matches_the_python_tokenizer() {
    FX.tokenization(24);
}

#[test]
fn xlmr_hidden_states_match_pytorch_padded_batch() {
    FX.hidden_states();
}

#[test]
fn xlmr_embeddings_match_sentence_transformers() {
    FX.embeddings(&[1, 3, 8]);
}

#[test]
fn xlmr_embedding_does_not_depend_on_batch_padding() {
    FX.padding_invariance("Привет, мир! Как дела?");
}

/// The stored `XLMRobertaForMaskedLM` checkpoint (keys under `roberta.`) loads; without
/// sentence-transformers files the usable length is max_position_embeddings - pad - 1.
#[test]
fn xlmr_roberta_prefixed_masked_lm_checkpoint_loads() {
    FX.same_hidden_states(
        &crate::common::fixture("xlmr/tiny-roberta-prefixed"),
        38,
        |t| t.len() < 60,
    );
}

#[test]
fn xlmr_embed_cli_json() {
    FX.embed_cli();
}
