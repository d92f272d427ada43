// TEMPORARY until wt-store lands.
impl super::PackTree<'_> {
    pub fn export(&self, dest: &std::path::Path) -> Result<(), super::SourceError> {
        let _ = dest;
        todo!()
    }
}
