package models

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"gorm.io/gorm/clause"
)

// setting is a broker-wide key/value row.
type setting struct {
	Key   string `gorm:"primaryKey"`
	Value string
}

func (setting) TableName() string { return "broker_settings" }

// JWTSecret returns the signing secret stored in the database, generating
// it on first use. INSERT … ON CONFLICT DO NOTHING then SELECT makes two
// brokers starting together agree on one secret.
func (s *Store) JWTSecret(ctx context.Context) ([]byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("crypto/rand: %w", err)
	}
	fresh := setting{Key: "jwt_secret", Value: base64.RawStdEncoding.EncodeToString(b[:])}
	db := s.db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&fresh).Error; err != nil {
		return nil, fmt.Errorf("store jwt secret: %w", err)
	}
	var got setting
	if err := db.Where("key = ?", "jwt_secret").Take(&got).Error; err != nil {
		return nil, fmt.Errorf("read jwt secret: %w", err)
	}
	secret, err := base64.RawStdEncoding.DecodeString(got.Value)
	if err != nil {
		return nil, fmt.Errorf("decode stored jwt secret: %w", err)
	}
	return secret, nil
}
