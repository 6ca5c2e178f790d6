//! A progress bar around any model: requests go through in chunks, the bar counts answers
//! (answers from the response cache arrive at once).

use flageval::model::{GenRequest, Model, Request};
use indicatif::ProgressBar;

pub struct Progress<M> {
    pub inner: M,
    pub bar: ProgressBar,
    pub chunk: usize,
}

impl<M: Model> Progress<M> {
    fn chunked<Q, A>(
        &mut self,
        requests: &[Q],
        mut f: impl FnMut(&mut M, &[Q]) -> flageval::Result<Vec<A>>,
    ) -> flageval::Result<Vec<A>> {
        self.bar
            .set_length(self.bar.position() + requests.len() as u64);
        let mut out = Vec::with_capacity(requests.len());
        for part in requests.chunks(self.chunk.max(1)) {
            out.extend(f(&mut self.inner, part)?);
            self.bar.inc(part.len() as u64);
        }
        Ok(out)
    }
}

impl<M: Model> Model for Progress<M> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }

    fn loglikelihood(&mut self, r: &[Request]) -> flageval::Result<Vec<(f64, bool)>> {
        self.chunked(r, |m, q| m.loglikelihood(q))
    }

    fn loglikelihood_rolling(&mut self, t: &[String]) -> flageval::Result<Vec<f64>> {
        self.chunked(t, |m, q| m.loglikelihood_rolling(q))
    }

    fn generate_until(&mut self, r: &[GenRequest]) -> flageval::Result<Vec<String>> {
        self.chunked(r, |m, q| m.generate_until(q))
    }
}
