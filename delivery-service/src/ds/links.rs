//! Linking a new device (`docs/identity.md`, "Linking"): the new device's
//! request, kept until it expires; its approval by a device of the same
//! user, accepted once. The DS checks who may make and approve a request;
//! what the request and approval say is checked by the two devices (MACs
//! under the link code's secret, which the DS never sees).

use base64::Engine as _;
use grove_proto::link::{LinkRequest, LINK_PROOF_LABEL, LINK_TTL_SECS, MAX_LINK_APPROVAL, MAX_LINK_REQUEST};
use rand::RngCore as _;

use super::devices::Session;
use super::{now_secs, Ds};
use crate::api;
use crate::auth;
use crate::error::DsError;
use crate::store::LinkRecord;

/// Decodes a link id from its URL form.
fn link_id(id: &str) -> Result<[u8; 16], DsError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .ok_or(DsError::UnknownLink)
}

impl Ds {
    /// Stores a new device's link request for `user`: the user must have an
    /// identity key (a device list), the app's login must vouch for it when
    /// the DS requires one, the request must be for `user`, signed by its
    /// device key, and that device must not be in the list yet.
    pub async fn create_link(&self, user: &str, req: &api::LinkCreateRequest) -> Result<api::LinkCreated, DsError> {
        api::UserName::parse(user)?;
        if let Some(login) = &self.limits.login {
            login.verify(req.login_token.as_deref(), user)?;
        }
        self.registered(user).await?;
        let invalid = |why: &str| DsError::LinkInvalid(why.to_owned());
        if req.request.len() > MAX_LINK_REQUEST {
            return Err(invalid("the request is too large"));
        }
        let request = LinkRequest::decode(&req.request).map_err(|e| DsError::LinkInvalid(format!("malformed: {e}")))?;
        if request.user() != user {
            return Err(invalid("the request is for another user"));
        }
        let Some(list) = self.latest_device_list(user).await? else {
            return Err(invalid(
                "this user has no identity key (a home made before identity keys cannot link devices)",
            ));
        };
        let tbs = &request.tbs;
        let scheme = auth::scheme_from_u16(tbs.signature_scheme)
            .ok_or(DsError::UnsupportedSignatureScheme(tbs.signature_scheme))?;
        let proof_bytes = grove_proto::identity::labeled(LINK_PROOF_LABEL, &req.request);
        auth::verify(&self.crypto, scheme, &proof_bytes, tbs.device_key.as_slice(), &req.proof)?;
        if list.contains(tbs.device_key.as_slice()) {
            return Err(invalid("this device is in the user's device list already"));
        }
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let record = LinkRecord {
            user: user.to_owned(),
            expires_at: now_secs() + LINK_TTL_SECS,
            request: req.request.clone(),
            approval: None,
        };
        if !self.store.put_link(&id, &record).await? {
            return Err(DsError::Internal("a random link id collided".into()));
        }
        self.persist().await?;
        tracing::info!(user, "link request stored");
        Ok(api::LinkCreated {
            id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id),
            expires_in: LINK_TTL_SECS,
        })
    }

    /// A link request and its approval, by id (the id is the capability:
    /// 128 random bits, known to the new device and to whoever it showed the
    /// code; the approval is sealed to the new device).
    pub async fn link(&self, id: &str) -> Result<api::LinkResponse, DsError> {
        let record = self.live_link(&link_id(id)?).await?;
        Ok(api::LinkResponse {
            user: record.user,
            request: record.request,
            approval: record.approval,
            expires_in: record.expires_at.saturating_sub(now_secs()),
        })
    }

    /// Records the approval of a link request, once. The caller must be a
    /// device of the request's user, and the device list must already hold
    /// the new device (the approving device publishes it first).
    pub async fn approve_link(&self, caller: &Session, id: &str, approval: &[u8]) -> Result<(), DsError> {
        let id = link_id(id)?;
        let record = self.live_link(&id).await?;
        if caller.user != record.user || caller.device.is_none() {
            return Err(DsError::NotAMember);
        }
        if record.approval.is_some() {
            return Err(DsError::LinkUsed);
        }
        if approval.is_empty() || approval.len() > MAX_LINK_APPROVAL {
            return Err(DsError::LinkInvalid(format!("an approval is 1 to {MAX_LINK_APPROVAL} bytes")));
        }
        let request =
            LinkRequest::decode(&record.request).map_err(|e| DsError::Internal(format!("stored link: {e}")))?;
        // The store, not the cache: the list was published a moment ago,
        // perhaps through another replica.
        let listed = match self.store.latest_device_list(&record.user).await? {
            Some(b) => grove_proto::identity::DeviceList::decode(&b)
                .map_err(|e| DsError::Internal(format!("stored {e}")))?
                .contains(request.tbs.device_key.as_slice()),
            None => false,
        };
        if !listed {
            return Err(DsError::LinkInvalid(
                "the new device is not in the device list: publish the list that adds it, then approve".into(),
            ));
        }
        if !self.store.approve_link(&id, approval).await? {
            return Err(DsError::LinkUsed);
        }
        self.persist().await?;
        tracing::info!(user = %record.user, "link request approved");
        Ok(())
    }

    /// The link request `id`, unless it expired.
    async fn live_link(&self, id: &[u8; 16]) -> Result<LinkRecord, DsError> {
        match self.store.link(id).await? {
            Some(r) if r.expires_at >= now_secs() => Ok(r),
            _ => Err(DsError::UnknownLink),
        }
    }
}
